"""Compare what a destination stores, and what it rejected, with what the oracle expects.

A finding is one of three weights:

- ``silent``: a stored value that differs from the oracle's, a row stored that the oracle
  rejects, or a row the oracle expects that is missing or doubled without a rejected-row record;
- ``loud``: a row rejected that the oracle accepts, or a load that failed (or did not) against
  the oracle: nothing is hidden, but the contract is not met;
- ``record``: the rejected row is there but its record is off (kind, line, file, reason).
"""

import datetime as dt
import json
import math
import struct
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from etl_platform_tests.fidelity.oracle import REJECT, Either, JsonValue, base_type, parse_json

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Finding:
    weight: str  # silent, loud, record
    message: str
    cause: str  # a short class of the discrepancy, for grouping ("bigint: '10.5' stored 11")


def csv_file_form(value, target: str):
    """A varchar cell as a CSV file table stores it: a leading ' before a formula start."""
    if base_type(target) == "varchar" and isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def shown(value) -> str:
    if isinstance(value, JsonValue):
        value = value.value
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-20:]} ({len(text)} chars)"


def same(expected, stored, target: str) -> bool:
    """Whether ``stored`` (as the destination gives it back) is the oracle's ``expected`` value."""
    if expected is None or stored is None:
        return expected is None and stored is None
    kind = base_type(target)
    if kind == "double":
        if not isinstance(stored, float):
            return False
        if math.isnan(expected):
            return math.isnan(stored)
        return struct.pack(">d", expected) == struct.pack(">d", stored)
    if kind == "decimal":
        try:
            return isinstance(stored, Decimal | int) and Decimal(stored) == expected
        except InvalidOperation:
            return False
    if kind in ("bigint", "integer", "smallint"):
        return type(stored) is int and stored == expected
    if kind == "boolean":
        return type(stored) is bool and stored is expected
    if kind == "date":
        return type(stored) is dt.date and stored == expected
    if kind == "time":
        if isinstance(
            stored, dt.timedelta
        ):  # a source's time of day kept as a duration (MariaDB TIME: -838 h to 838 h)
            return stored == dt.datetime.combine(dt.date.min, expected) - dt.datetime.combine(dt.date.min, dt.time())
        return isinstance(stored, dt.time) and stored.tzinfo is None and stored == expected
    if kind == "timestamp":
        return type(stored) is dt.datetime and stored.tzinfo is None and stored == expected
    if kind == "timestamptz":
        return type(stored) is dt.datetime and stored.tzinfo is not None and stored == expected
    if kind == "json":
        try:
            parsed = parse_json(stored) if isinstance(stored, str) else stored
        except ValueError:
            return False
        return json_equal(expected.value, parsed)
    if kind == "uuid":
        try:
            return uuid.UUID(str(stored)) == expected
        except ValueError:
            return False
    return isinstance(stored, str) and stored == expected


def json_equal(a, b) -> bool:
    """The same JSON: objects by keys, arrays in order, numbers by value, true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | Decimal | float) and isinstance(b, int | Decimal | float):
        return Decimal(str(a)) == Decimal(str(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@dataclass
class RowExpectation:
    rid: int
    cells: list  # per checked column: a value, REJECT or Either
    sent: list  # per column: what the source held, for messages
    line: int | None = None

    @property
    def rejected_columns(self) -> list[int]:
        return [i for i, c in enumerate(self.cells) if c is REJECT]

    @property
    def verdict(self) -> str:
        if self.rejected_columns:
            return "reject"
        return "either" if any(isinstance(c, Either) for c in self.cells) else "accept"


def rid_of(row: "RejectedRow", rid_name: str, rid_source: str, line_to_rid: dict[int, int]):  # noqa: F821
    """Which sent row a rejected row is: its record's row id, else its line."""
    if row.record:
        try:
            record = json.loads(row.record)
        except ValueError:
            record = None
        if isinstance(record, dict):
            for key in (rid_name, rid_source):
                if record.get(key) is not None:
                    try:
                        return int(str(record[key]).strip())
                    except ValueError:
                        pass
        else:
            first = row.record.split(",")[0].split(";")[0].split("\t")[0].strip('"')
            if first.isdigit():
                return int(first)
    if row.source_line is not None and row.source_line in line_to_rid:
        return line_to_rid[row.source_line]
    return None


def cell_findings(
    context: str, names: list[str], types: list[str], expectation: RowExpectation, stored_row: dict
) -> list[Finding]:
    findings = []
    for name, target, wanted, sent in zip(names, types, expectation.cells, expectation.sent):
        got = stored_row.get(name, _MISSING)
        if got is _MISSING:
            findings.append(
                Finding(
                    "silent",
                    f"{context}: column {name!r} is missing from the stored table",
                    f"{target}: column missing",
                )
            )
            continue
        if wanted is REJECT:
            findings.append(
                Finding(
                    "silent",
                    f"{context}: column {name!r} ({target}) row {expectation.rid}: sent {shown(sent)}, expected "
                    f"rejected, stored {shown(got)}",
                    f"{base_type(target)}: accepted what the contract rejects",
                )
            )
            continue
        value = wanted.value if isinstance(wanted, Either) else wanted
        if not same(value, got, target):
            findings.append(
                Finding(
                    "silent",
                    f"{context}: column {name!r} ({target}) row {expectation.rid}: sent {shown(sent)}, expected "
                    f"{shown(value)}, stored {shown(got)}",
                    f"{base_type(target)}: stored value differs",
                )
            )
    return findings


_MISSING = object()


def multiset_findings(context: str, expected_rows: list[tuple], stored_rows: list[tuple]) -> list[Finding]:
    """Rows compared as a multiset (for sync-mode models, where a row is all of its values)."""
    want, got = Counter(expected_rows), Counter(stored_rows)
    findings = []
    for row, count in (want - got).items():
        findings.append(
            Finding("silent", f"{context}: expected row {row} {count} more time(s) than stored", "row missing")
        )
    for row, count in (got - want).items():
        findings.append(
            Finding("silent", f"{context}: stored row {row} {count} more time(s) than expected", "row extra or doubled")
        )
    return findings
