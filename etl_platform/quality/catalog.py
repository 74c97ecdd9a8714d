"""What Great Expectations offers, known without importing it.

Importing Great Expectations takes seconds, and every process that loads the code location
(webserver, daemon, each run) would pay for it. So the names and arguments of its
expectations are kept in ``catalog.json``, written from the installed GX by
``python -m etl_platform.quality.catalog``; a test compares the two, so an upgrade of GX
that adds or changes an expectation shows up as a failing test, not as a wrong spec error.
"""

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CATALOG = Path(__file__).with_name("catalog.json")

# Arguments GX gives every expectation that a pipeline may not set: the platform sets the
# result format, and the others describe results rather than what is expected.
_MANAGED = {"id", "result_format", "rendered_content", "batch_id", "windows", "catch_exceptions", "severity"}
# Arguments that name columns of the validated table.
COLUMN_ARGUMENTS = ("column", "column_A", "column_B", "column_list")


@dataclass(frozen=True)
class Argument:
    required: bool
    kinds: tuple[str, ...]  # JSON kinds accepted: number, integer, string, boolean, array, object, null; () = any


@dataclass(frozen=True)
class ExpectationKind:
    name: str
    family: str  # column_map, column_aggregate, column_pair_map, multicolumn_map, table
    arguments: dict[str, Argument]

    def column_arguments(self, given: dict) -> list[tuple[str, str | int | None, str]]:
        """(argument, index in a list or None, column name) for every column ``given`` names."""
        named = []
        for arg in COLUMN_ARGUMENTS:
            value = given.get(arg)
            if isinstance(value, str):
                named.append((arg, None, value))
            elif isinstance(value, list):
                named += [(arg, i, v) for i, v in enumerate(value) if isinstance(v, str)]
        return named


@cache
def expectation_kinds() -> dict[str, ExpectationKind]:
    raw = json.loads(CATALOG.read_text())
    return {
        name: ExpectationKind(
            name,
            entry["family"],
            {a: Argument(v["required"], tuple(v["kinds"])) for a, v in entry["arguments"].items()},
        )
        for name, entry in raw.items()
    }


def _kinds(annotation: str) -> list[str]:
    """JSON kinds a GX field's type annotation accepts. A dict in GX's types is an
    evaluation parameter ({"$PARAMETER": ...}), which pipelines do not use."""
    text = annotation.replace("typing.", "")
    if "Literal[" in text or "Condition" in text or "Any" in text:
        return []
    kinds = set()
    for token, kind in (
        (r"\bfloat\b|ConstrainedFloat|\bDecimal\b", "number"),
        (r"\bint\b|StrictInt|ConstrainedInt", "integer"),
        (r"\bstr\b|StrictStr|datetime|\bdate\b", "string"),
        (r"\bbool\b|StrictBool", "boolean"),
        (r"List|Sequence|\blist\b|\bset\b|Set\[|tuple|Tuple", "array"),
        (r"NoneType|Optional", "null"),
    ):
        if re.search(token, text):
            kinds.add(kind)
    if "number" in kinds:
        kinds.add("integer")
    return sorted(kinds)


def build_catalog() -> dict:
    """The catalog, read from the installed Great Expectations (slow: imports it)."""
    import great_expectations  # noqa: F401  (registers the core expectations)
    from great_expectations.expectations import expectation as base
    from great_expectations.expectations.registry import _registered_expectations

    families = (
        (base.ColumnMapExpectation, "column_map"),
        (base.ColumnPairMapExpectation, "column_pair_map"),
        (base.MulticolumnMapExpectation, "multicolumn_map"),
        (base.ColumnAggregateExpectation, "column_aggregate"),
    )
    catalog = {}
    for name, cls in sorted(_registered_expectations.items()):
        family = next((f for k, f in families if issubclass(cls, k)), "table")
        arguments = {
            field: {"required": bool(info.required), "kinds": _kinds(str(info.outer_type_))}
            for field, info in cls.__fields__.items()
            if field not in _MANAGED
        }
        catalog[name] = {"family": family, "arguments": arguments}
    return catalog


if __name__ == "__main__":
    CATALOG.write_text(json.dumps(build_catalog(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {CATALOG}")
