"""The pipeline contract: what a pipeline's ``defs.yaml`` may say.

Every field description here is the user's documentation: it is what an editor
shows when autocompleting ``defs.yaml`` (see ``etl_platform/schema/``)."""

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from etl_platform.spec.automation import FreshnessSpec, RetrySpec, TriggersSpec
from etl_platform.spec.base import IDENTIFIER, SpecModel
from etl_platform.spec.ml import TrainSpec
from etl_platform.spec.partitions import PartitionsSpec
from etl_platform.spec.quality import ExpectationSpec
from etl_platform.spec.sources import SourceSpec

SchemaChanges = Literal["evolve", "freeze", "discard"]


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
            raise ValueError(
                f"lookback {lookback!r} is not a duration like '15 minutes', '2 hours' or '1 day', nor a count"
            )
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
            raise ValueError(f"invalid regular expression: {err}") from err
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
    train: TrainSpec | None = Field(
        None, description="A model trained on the loaded table (or a query), tracked and registered in MLflow."
    )
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
