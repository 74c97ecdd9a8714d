"""Where a pipeline reads: files of a connection, a table or query, or a REST endpoint (the YAML contract)."""

import codecs
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from etl_platform.spec.base import IDENTIFIER, SpecModel
from etl_platform.spec.columns import ColumnSpec

FILE_FORMATS = ("csv", "parquet", "json", "ndjson", "xlsx")


AUTO_ENCODING = "auto"  # detected per file (intake.encodings)


def check_declared(encoding: str) -> str:
    """The declared encoding, normalised; raises ValueError for a name Python does not know."""
    if encoding.lower() == AUTO_ENCODING:
        return AUTO_ENCODING
    try:
        return codecs.lookup(encoding).name
    except LookupError as err:
        raise ValueError(
            f"unknown encoding {encoding!r}; use 'auto', 'utf-8', 'utf-16', 'cp1252', 'latin-1', "
            "'cp1251', 'shift_jis' or another name Python knows"
        ) from err


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
                "a source needs exactly one of files, table, query, endpoint"
                + (f" (got {', '.join(given)})" if given else "")
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
