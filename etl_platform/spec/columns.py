"""A column of a pipeline's mapping: its source name, type and formats (the YAML contract)."""

import re

from pydantic import Field, model_validator

from etl_platform.spec.base import SpecModel
from etl_platform.sql import expression_references

_TYPE = (
    r"^(?i:varchar|string|text|bigint|integer|int|smallint|double|float|real|boolean|bool"
    r"|date|time|timestamp|timestamptz|json|uuid|decimal\(\s*\d+\s*,\s*\d+\s*\))$"
)
_TYPE_ALIASES = {
    "string": "VARCHAR",
    "text": "VARCHAR",
    "int": "INTEGER",
    "bool": "BOOLEAN",
    "float": "DOUBLE",
    "real": "DOUBLE",
}


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
        'columns of the same source record, e.g. "make_date(year::int, month::int, day::int)" (a name '
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
            raise ValueError(
                f"format {self.format!r} reads a time zone (%z/%Z), which a date cannot keep; "
                "use type timestamptz, or a format without it"
            )
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
