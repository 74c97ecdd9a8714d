"""The pipeline contract: what a pipeline's ``defs.yaml`` may say.

Every field description here is the user's documentation: it is what an editor
shows when autocompleting ``defs.yaml`` (see ``etl_platform/schema/``).
"""

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from etl_platform.automation.spec import FreshnessSpec, RetrySpec, TriggersSpec
from etl_platform.ml.spec import TrainSpec
from etl_platform.partitions.spec import PartitionsSpec
from etl_platform.quality.spec import ExpectationSpec
from etl_platform.spec_base import IDENTIFIER, SpecModel
from etl_platform.sql import expression_references

_TYPE = (
    r"^(?i:varchar|string|text|bigint|integer|int|smallint|double|float|real|boolean|bool"
    r"|date|time|timestamp|timestamptz|json|uuid|decimal\(\s*\d+\s*,\s*\d+\s*\))$"
)
_TYPE_ALIASES = {"string": "VARCHAR", "text": "VARCHAR", "int": "INTEGER", "bool": "BOOLEAN", "float": "DOUBLE", "real": "DOUBLE"}
SchemaChanges = Literal["evolve", "freeze", "discard"]
FILE_FORMATS = ("csv", "parquet", "json", "ndjson", "xlsx")


class ColumnSpec(SpecModel):
    """How one target column is filled from the source."""

    source: str | None = Field(
        None,
        alias="from",
        description="Name of the column in the source (CSV header, JSON field, Parquet column). "
        "Defaults to the target column's own name.",
    )
    type: str = Field(
        "varchar",
        pattern=_TYPE,
        description="Target type: varchar, bigint, integer, smallint, double, decimal(p,s), boolean, "
        "date, time, timestamp, timestamptz, json, uuid. A value that does not convert rejects its row "
        "with the reason and line.",
    )
    format: str | None = Field(
        None,
        description="strptime format for date/timestamp columns, e.g. '%m/%d/%Y'. Without it ISO 8601 "
        "(2024-01-31) is expected.",
    )
    expression: str | None = Field(
        None,
        description="SQL expression applied before the cast, written in terms of `value` (the source column's "
        "text), e.g. \"replace(value, ',', '')\" to drop thousands separators. It may also name other "
        "columns of the same source record, e.g. \"make_date(year::int, month::int, day::int)\" (a name "
        "with spaces in double quotes); a column derived only from others needs no `from`.",
    )
    description: str | None = Field(None, description="Shown in the column schema in the Dagster UI.")
    sensitive: bool = Field(
        False,
        description="The column holds personal or confidential values: data quality checks report counts "
        "and shares for it, never its values (no examples, no observed value), in the Dagster UI and in "
        "the Great Expectations data docs.",
    )

    @model_validator(mode="after")
    def _format_fits_the_type(self) -> "ColumnSpec":
        zoned = self.format is not None and ("%z" in self.format or "%Z" in self.format)
        if zoned and self.duckdb_type == "DATE":
            # A date with a time zone names a local day that UTC may not share: ambiguous, refused.
            raise ValueError(f"format {self.format!r} reads a time zone (%z/%Z), which a date cannot keep; "
                             "use type timestamptz, or a format without it")
        return self

    @property
    def duckdb_type(self) -> str:
        normalised = re.sub(r"\s+", "", self.type).upper()
        return _TYPE_ALIASES.get(normalised.lower(), normalised)

    @property
    def parsed_in_sql(self) -> bool:
        """True when the value is made by our SQL (a format or an expression), not taken as the source has it."""
        return self.format is not None or self.expression is not None

    @property
    def reads_own_source(self) -> bool:
        """Whether the column reads its own source column (``from``, default its name) as ``value``:
        always, except for an expression that never mentions ``value`` (a column derived from
        other source columns)."""
        return self.expression is None or "value" in expression_references(self.expression, with_value=True)

    def source_columns(self, name: str) -> list[str]:
        """The source columns this target column (named ``name``) reads: its own, unless an
        expression derives it from others, and those its expression names."""
        own = [self.source or name] if self.reads_own_source else []
        named = expression_references(self.expression) if self.expression else ()
        return own + [c for c in named if c not in own]


class CsvOptions(SpecModel):
    """CSV dialect. Everything left out is detected from the file."""

    delimiter: str | None = Field(None, max_length=4, description="Field separator, e.g. ',' ';' '\\t' '|'.")
    quote: str | None = Field(None, max_length=1, description="Quote character, usually '\"'.")
    escape: str | None = Field(None, max_length=1, description="Escape character inside quoted fields.")
    header: bool = Field(True, description="Whether the first line holds column names.")
    skip_lines: int = Field(0, ge=0, description="Lines to skip before the header (banners, report titles).")
    null_strings: tuple[str, ...] = Field(("",), description="Values read as NULL, e.g. ['', 'NA', 'n/a'].")
    encoding: str = Field(
        "auto",
        description="Text encoding of CSV and JSON files: 'auto' (detect: UTF-8 with or without BOM, UTF-16 "
        "with a BOM, otherwise Windows-1252/Latin-1), or a name such as 'utf-8', 'utf-16', 'cp1252', "
        "'latin-1'. Files not in UTF-8 are converted to UTF-8 as they are read.",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        from etl_platform.intake.encodings import check_declared

        return check_declared(encoding)


class ExcelOptions(SpecModel):
    """Which part of an .xlsx workbook to read."""

    sheet: str | None = Field(None, description="Worksheet to read, by its tab name. Defaults to the first worksheet.")


class Limits(SpecModel):
    """Upper bounds per input file; a file over a limit is rejected whole with the reason."""

    max_file_bytes: int | None = Field(
        None,
        gt=0,
        description="Largest file accepted, in bytes of content: for a .gz or .zip file, its size after "
        "decompression (decompression stops as soon as it passes the limit). No limit when left out.",
    )
    max_decompressed_bytes: int = Field(
        4 * 1024**3,
        gt=0,
        description="Most bytes a compressed file (.gz, .zip, and the parts of an .xlsx workbook) may "
        "unpack to, default 4 GiB. Protects the disk from zip bombs; decompression stops at the limit.",
    )
    max_rows: int | None = Field(None, gt=0, description="Most data rows accepted in one file.")
    max_columns: int | None = Field(
        4096, gt=0, description="Most columns a file may have, default 4096; null for no limit."
    )
    max_field_chars: int | None = Field(
        None,
        gt=0,
        description="Longest text value accepted in a loaded text column, in characters. A file with a longer "
        "value is rejected whole, naming the column and row. Without it the readers' own caps apply: a CSV "
        "line over 2 MB or a JSON object over 16 MB rejects the file.",
    )


class SourceSpec(SpecModel):
    """Where the rows come from."""

    connection: str = Field(
        "landing",
        description="Connection to read from, by name (see connections/defs.yaml). 'landing' is the local "
        "landing folder (ETL_LANDING_DIR). A file connection (local, s3) needs `files`; a database "
        "connection (postgres, mysql, sqlite, duckdb) needs `table` or `query`; a rest connection needs `endpoint`.",
    )
    files: str | None = Field(
        None,
        description="Glob of files relative to the connection's folder, e.g. 'campaigns/*.csv' or "
        "'shop/**/*.parquet'. Files are read in name order.",
    )
    table: str | None = Field(
        None,
        description="Database table to read, as 'table' or 'schema.table'. Read with a server-side cursor, "
        "in batches; an incremental sync reads only rows at or after the saved cursor.",
    )
    query: str | None = Field(
        None,
        description="One SELECT to read instead of a table, in the source database's own SQL. An incremental "
        "sync wraps it and filters it on the cursor column.",
    )
    endpoint: dict[str, Any] | None = Field(
        None,
        description="REST endpoint to read from a rest connection: path, params, records_path, pagination "
        "(none, page_number, offset, cursor, link_header) and incremental {param, cursor_field}.",
    )
    format: Literal["csv", "parquet", "json", "ndjson", "xlsx"] | None = Field(
        None, description="File format. Inferred from the extension when left out."
    )
    csv: CsvOptions = Field(default_factory=CsvOptions, description="CSV dialect options.")
    excel: ExcelOptions = Field(default_factory=ExcelOptions, description="For xlsx files: which worksheet to read.")
    columns: dict[str, ColumnSpec] = Field(
        default_factory=dict,
        description="Target columns in order, each mapped from a source column and cast to a type. "
        "Source columns not listed here are not loaded. Required for files; for a table, query or "
        "endpoint, leaving it out loads every source column with its own type and follows the "
        "source's schema changes by destination.schema_changes.",
    )
    limits: Limits = Field(default_factory=Limits, description="Per-file limits.")
    on_bad_file: Literal["skip", "fail"] = Field(
        "skip",
        description="A file that cannot be read at all (missing mapped columns, over a limit, not parseable): "
        "'skip' records it in the rejected table and loads the other files; 'fail' stops the load and "
        "keeps the previous table.",
    )
    settle_seconds: float = Field(
        5,
        ge=0,
        description="A CSV or NDJSON file whose last line has no line break and that was modified less than this "
        "many seconds before the load is taken to be still being written: it is left for the next run (not "
        "loaded, not rejected; the load's files table says so), so a half-written last row never loads. A file "
        "that changes while it is read is left for the next run whatever this says; a replace load with such a "
        "file fails instead and keeps the table. 0 turns off the line-break rule.",
    )

    @field_validator("columns")
    @classmethod
    def _column_names_are_identifiers(cls, columns: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        for name in columns:
            if not re.match(IDENTIFIER, name):
                raise ValueError(f"target column name {name!r} must be a plain identifier (letters, digits, _)")
            if name.startswith("_"):
                raise ValueError(f"target column name {name!r} may not start with '_' (reserved for lineage)")
        return columns

    @model_validator(mode="after")
    def _one_kind_of_source(self) -> "SourceSpec":
        given = [k for k in ("files", "table", "query", "endpoint") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a source needs exactly one of files, table, query, endpoint" + (f" (got {', '.join(given)})" if given else "")
            )
        if self.files is not None and not self.columns:
            raise ValueError("a file source needs columns: the mapping from the file's columns to the table's")
        return self

    @property
    def reads(self) -> str:
        """What the source reads: 'files', 'sql' (table or query) or 'rest'."""
        if self.files is not None:
            return "files"
        return "rest" if self.endpoint is not None else "sql"

    @property
    def label(self) -> str:
        """How rows of this source are attributed in the rejected table and metadata."""
        if self.files is not None:
            return self.files
        if self.table is not None:
            return self.table
        return "query" if self.query is not None else str((self.endpoint or {}).get("path", "endpoint"))

    @property
    def format_options(self) -> SpecModel:
        """The options of the source's file format (the CSV dialect, the Excel sheet)."""
        return self.excel if self.file_format == "xlsx" else self.csv

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        if self.files is None:
            return "arrow"
        # 'orders.csv.gz' is CSV: compression is detected from the content and undone on intake.
        suffix = re.sub(r"\.(gz|gzip|zip)$", "", self.files, flags=re.IGNORECASE).rsplit(".", 1)[-1].lower()
        return {"jsonl": "ndjson", "txt": "csv", "tsv": "csv"}.get(suffix, suffix)


class SyncSpec(SpecModel):
    """How a load combines with what the destination already holds."""

    mode: Literal["replace", "append", "incremental", "merge"] = Field(
        "replace",
        description="replace: build the new table aside and swap it in atomically. append: add the rows. "
        "merge: upsert by primary_key, keeping the latest row per key. incremental: load only rows whose "
        "cursor is at or after the saved cursor (inclusive, de-duplicated), saving the new cursor in the "
        "same transaction as the rows.",
    )
    primary_key: list[str] = Field(
        default_factory=list, description="Target columns that identify a row. Required for merge."
    )
    cursor: str | None = Field(
        None, description="Target column that only grows (a timestamp or id). Required for incremental."
    )
    lookback: int | str | None = Field(
        None,
        description="For incremental: read again from this far below the saved cursor, and leave out what "
        "was loaded already (by primary_key, or without one as whole rows). A duration for a date or "
        "timestamp cursor ('15 minutes', '2 hours', '1 day'), a count for a number cursor (1000). Needed "
        "when rows can appear below the saved cursor after a load: a transaction that commits late on a "
        "busy database (set it to the longest a transaction may stay open), clocks of several writers.",
    )
    allow_empty: bool = Field(
        False,
        description="For replace: let a load that accepted no rows empty the table. Off by default: a "
        "replace that read nothing from files or tables that exist fails and keeps the table as it was.",
    )

    @field_validator("lookback")
    @classmethod
    def _lookback_is_a_count_or_duration(cls, lookback: int | str | None) -> int | str | None:
        if isinstance(lookback, int) and lookback < 0:
            raise ValueError("lookback must not be negative")
        if isinstance(lookback, str) and not re.fullmatch(
            r"\s*\d+(\.\d+)?\s*(seconds?|s|minutes?|min|m|hours?|h|days?|d|weeks?|w)\s*", lookback, re.IGNORECASE
        ):
            raise ValueError(f"lookback {lookback!r} is not a duration like '15 minutes', '2 hours' or '1 day', nor a count")
        return lookback

    @model_validator(mode="after")
    def _mode_has_what_it_needs(self) -> "SyncSpec":
        if self.mode == "merge" and not self.primary_key:
            raise ValueError("mode 'merge' needs primary_key")
        if self.mode == "incremental" and not self.cursor:
            raise ValueError("mode 'incremental' needs cursor")
        if self.lookback is not None and self.mode != "incremental":
            raise ValueError("lookback is for mode 'incremental'")
        return self


class AcceptedValues(SpecModel):
    column: str = Field(description="Target column to test.")
    values: list[str | int | float | bool] = Field(min_length=1, description="The only values allowed.")


class RegexRule(SpecModel):
    column: str = Field(description="Target column to test.")
    pattern: str = Field(description="Regular expression the whole value must match.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"invalid regular expression: {err}") from None
        return pattern


class RuleSpec(SpecModel):
    """One row rule. Give exactly one of not_null, accepted_values, regex or check.

    A row that breaks any rule goes to the rejected table with every rule it broke.
    NULL values pass every rule except not_null.
    """

    name: str | None = Field(None, description="Name shown as the rejection reason. Generated when left out.")
    not_null: list[str] | None = Field(None, description="Target columns that must have a value.")
    accepted_values: AcceptedValues | None = Field(None, description="A column limited to a list of values.")
    regex: RegexRule | None = Field(None, description="A column whose values must match a pattern.")
    check: str | None = Field(
        None, description="SQL boolean expression over target columns, e.g. 'spend >= 0' or 'clicks >= conversions'."
    )

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> "RuleSpec":
        given = [k for k in ("not_null", "accepted_values", "regex", "check") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a rule needs exactly one of not_null, accepted_values, regex, check"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class DestinationSpec(SpecModel):
    """Where valid and rejected rows are written."""

    connection: str = Field(
        "warehouse",
        description="Where the valid rows go: 'warehouse' (the DuckDB warehouse, ETL_WAREHOUSE_PATH) or a "
        "connection from connections/defs.yaml: postgres (a table in that database, the cursor in its "
        "_etl.state table) or local / s3 (a table of Parquet or CSV files in <schema>/<table>/ under the "
        "connection's folder, the cursor in its _manifest.json). Rejected rows always go to the warehouse.",
    )
    schema_name: str | None = Field(
        None,
        alias="schema",
        pattern=IDENTIFIER,
        description="Schema (or, for files, folder) of the table. Defaults to the pipeline's name.",
    )
    table: str = Field(pattern=IDENTIFIER, description="Table that receives the valid rows.")
    rejected_table: str | None = Field(
        None,
        pattern=IDENTIFIER,
        description="Warehouse table that receives rejected rows with their reasons, file, line and run id. "
        "Defaults to '<table>_rejected'.",
    )
    format: Literal["parquet", "csv"] | None = Field(
        None,
        description="For a local or s3 destination: the files' format (default parquet). CSV cells that "
        "could start a spreadsheet formula are written with a leading quote.",
    )
    partition_by: list[str] = Field(
        default_factory=list,
        description="For a local or s3 destination: target columns whose values name sub-folders "
        "(hive style, e.g. region=EU/), so readers can skip whole folders.",
    )
    lineage_columns: bool = Field(
        True, description="Add _source_file and _load_id columns so every row can be traced to its file and run."
    )
    schema_changes: SchemaChanges = Field(
        "evolve",
        description="What a load does when its columns differ from the table's. evolve: add new columns "
        "(older rows get NULL; a column the source dropped is kept and gets NULL). freeze: fail with the "
        "difference and change nothing. discard: load only the table's existing columns, dropping new ones "
        "(listed in the schema_drift check). A changed type always fails with the difference.",
    )


class TransformSpec(SpecModel):
    """A SQL model built in the warehouse from this pipeline's tables (or other pipelines' tables)."""

    name: str = Field(pattern=IDENTIFIER, description="Table the SELECT is materialized into.")
    sql: str = Field(
        description="One SELECT statement. Refer to this pipeline's tables by name (e.g. 'campaigns'), "
        "to another pipeline's as '<pipeline>.<table>'."
    )
    description: str | None = Field(None, description="Shown on the asset in the Dagster UI.")


class ChecksSpec(SpecModel):
    """Asset checks on the loaded table."""

    max_rejected_fraction: float = Field(
        0.05, ge=0, le=1, description="The load check fails when more than this share of rows is rejected."
    )
    blocking: bool = Field(
        False, description="When true, a failed check stops downstream transforms from running on this load."
    )


class PipelineSpec(SpecModel):
    """One pipeline: a source, how its rows are mapped and checked, where they land, what is built on them."""

    description: str | None = Field(None, description="What this pipeline is for; shown on its assets.")
    owners: list[str] = Field(default_factory=list, description="Emails or 'team:name' of the owners.")
    source: SourceSpec
    sync: SyncSpec = Field(default_factory=SyncSpec, description="How loads combine with existing rows.")
    rules: list[RuleSpec] = Field(default_factory=list, description="Row rules; failing rows are rejected.")
    destination: DestinationSpec
    transforms: list[TransformSpec] = Field(default_factory=list, description="SQL models built after the load.")
    expectations: list[ExpectationSpec] = Field(
        default_factory=list,
        description="Great Expectations checks on the loaded table or a transform, run after each load; "
        "blocking ones stop downstream assets on failure.",
    )
    checks: ChecksSpec = Field(default_factory=ChecksSpec, description="Checks on the loaded table.")
    train: TrainSpec | None = Field(None, description="A model trained on the loaded table (or a query), tracked and registered in MLflow.")
    partitions: PartitionsSpec | None = Field(
        None,
        description="Split the table into partitions that load, rerun and backfill on their own: time windows "
        "of a date column ({by: daily, start: '2024-01-01', column: order_date}) or one per source file "
        "({by: file}). Left out: every load covers the whole source.",
    )
    triggers: TriggersSpec = Field(default_factory=TriggersSpec, description="Schedules and file sensors.")
    retries: RetrySpec = Field(default_factory=RetrySpec, description="Retries of transient failures.")
    freshness: FreshnessSpec | None = Field(
        None, description="How fresh the table must be, e.g. {max_age_hours: 26}; checked and alerted on when missed."
    )
