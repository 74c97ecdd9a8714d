"""The ``expectations`` section of a pipeline: Great Expectations checks on its tables."""

from typing import Any

from pydantic import Field, model_validator

from etl_platform.spec.base import IDENTIFIER, SpecModel

_EXAMPLE = "e.g. '- expect_column_values_to_be_between: {column: spend, min_value: 0}'"


class ExpectationSpec(SpecModel):
    """One Great Expectations expectation, or a suite file of them, checked after each load.

    Write the expectation's name as the key and its arguments as the value, e.g.
    ``expect_column_values_to_not_be_null: {column: campaign}``; any expectation of
    Great Expectations 1.x is accepted with its own arguments. Each becomes an asset check
    shown in the Dagster UI with the observed value, the count and share of unexpected
    values and a few examples (never for sensitive columns), and a link to the
    Great Expectations data docs.
    """

    model_config = SpecModel.model_config | {
        "json_schema_extra": {"patternProperties": {"^expect_[a-z0-9_]+$": {"type": ["object", "null"]}}}
    }

    expectation: str | None = Field(
        None,
        description="The expectation's name, e.g. expect_column_values_to_be_in_set. Usually written as the "
        "key of the entry, with the arguments as its value.",
    )
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="The expectation's arguments, as Great Expectations names them (column, min_value, "
        "value_set, mostly, ...). Usually written as the value of the expectation's key.",
    )
    suite: str | None = Field(
        None,
        description="Instead of one expectation: a Great Expectations suite file (JSON, as GX writes it: "
        '{"name": ..., "expectations": [{"type": ..., "kwargs": {...}}]}), relative to the pipeline\'s '
        "folder. Each expectation in it becomes a check.",
    )
    asset: str | None = Field(
        None,
        pattern=IDENTIFIER,
        description="Table to check: the loaded table (default) or one of this pipeline's transforms, by name.",
    )
    blocking: bool = Field(
        False,
        description="When true, a failure stops everything downstream of the checked table (transforms, "
        "training) from running on this data. Otherwise the failure is a warning.",
    )
    name: str | None = Field(
        None,
        pattern=IDENTIFIER,
        description="Name of the check in the Dagster UI. Defaults to the expectation's name and its column, "
        "e.g. expect_column_values_to_be_between__spend. For a suite: the prefix of its checks' names.",
    )

    @model_validator(mode="before")
    @classmethod
    def _expectation_as_key(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        keyed = [k for k in data if isinstance(k, str) and k.startswith("expect_")]
        if len(keyed) > 1:
            raise ValueError(f"one expectation per entry, got {', '.join(keyed)}; start a new '- ' entry for each")
        if keyed:
            key = keyed[0]
            arguments = data[key]
            if arguments is not None and not isinstance(arguments, dict):
                raise ValueError(f"the arguments of {key} must be a mapping, {_EXAMPLE}")
            data = {k: v for k, v in data.items() if k != key} | {"expectation": key, "arguments": arguments or {}}
        return data

    @model_validator(mode="after")
    def _expectation_or_suite(self) -> "ExpectationSpec":
        if (self.expectation is None) == (self.suite is None):
            raise ValueError(
                f"an entry needs one expectation or a suite file, {_EXAMPLE} or 'suite: suites/campaigns.json'"
            )
        if self.suite is not None and self.arguments:
            raise ValueError("a suite entry takes no arguments: they are in the suite file")
        return self
