"""A Great Expectations expectation of a pipeline, as resolved from its YAML at load time."""

from dataclasses import dataclass, field
from typing import Any

from etl_platform.quality.catalog import expectation_kinds


@dataclass(frozen=True)
class Expectation:
    """One expectation, ready to run as the asset check ``check_name`` on ``table``."""

    check_name: str
    table: str  # a table of the pipeline's schema: the loaded table or a transform
    type: str
    kwargs: dict[str, Any] = field(hash=False)
    blocking: bool
    family: str  # column_map, column_aggregate, column_pair_map, multicolumn_map, table
    sensitive: bool  # it reads a sensitive column: its results never show values
    defined_at: str = ""  # file:line

    @property
    def columns(self) -> list[str]:
        return [c for _, _, c in expectation_kinds()[self.type].column_arguments(self.kwargs)]

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if k not in ("meta", "notes", "description"))
        return self.kwargs.get("description") or f"{self.type}({shown})"
