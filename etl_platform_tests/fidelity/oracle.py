"""The conversion contract, written out in plain Python: what a value must become.

Nothing here imports etl_platform. Every rule is the README's contract as a person would
apply it by hand, so a disagreement between this module and a load is a finding about the
platform (or about this restatement of the contract: both are short enough to read side by side).

``from_text(text, target)`` is the value a text (a CSV field, a JSON string or number literal,
an XLSX cell as shown, a typed value rendered as text) must become in a ``target`` column, or
``REJECT``. ``render(value)`` renders a typed source value as that text. ``same_type`` says
when a typed value lands as it is instead.
"""

import datetime as dt
import json
import math
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


class _Reject:
    """The row must be rejected, with a reason naming the column."""

    def __repr__(self) -> str:
        return "REJECT"


REJECT = _Reject()


@dataclass(frozen=True)
class Either:
    """Either exactly ``value`` lands or the row is rejected (a value some destinations cannot hold)."""

    value: object


INTEGER_RANGES = {"bigint": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1), "smallint": (-(2**15), 2**15 - 1)}
TARGET_TYPES = (
    "varchar",
    "bigint",
    "integer",
    "smallint",
    "double",
    "decimal",
    "boolean",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "json",
    "uuid",
)

_INTEGER = re.compile(r" *([+-]?[0-9]+)(\.0+)? *")
_DECIMAL = re.compile(r" *([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?) *")
_DOUBLE = re.compile(
    r" *([+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)) *", re.IGNORECASE
)
_TRUE, _FALSE = {"true", "t", "yes", "y", "1"}, {"false", "f", "no", "n", "0"}
_DATE = r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
_CLOCK = r"([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?"
_DATE_ONLY = re.compile(_DATE + r"(?:[T ]00:00(?::00(?:\.0+)?)?)?")
_TIMESTAMP = re.compile(_DATE + r"(?:[T ]" + _CLOCK + r")?" + r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?")
_TIME = re.compile(_CLOCK)
_UUID = re.compile(r"\{?([0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12})\}?")
_HYPHENATED = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def base_type(target: str) -> str:
    """'decimal(10,2)' -> 'decimal'."""
    return target.split("(")[0]


def decimal_shape(target: str) -> tuple[int, int]:
    precision, scale = target[target.index("(") + 1 : -1].split(",")
    return int(precision), int(scale)


def from_text(text: str | None, target: str):
    """What ``text`` must become in a column of type ``target`` (None is NULL)."""
    if text is None:
        return None
    if "\x00" in text:
        return REJECT
    kind = base_type(target)
    if kind == "varchar":
        return text
    if kind in INTEGER_RANGES:
        return _integer(text, *INTEGER_RANGES[kind])
    if kind == "decimal":
        return _decimal(text, *decimal_shape(target))
    if kind in ("date", "time", "timestamp", "timestamptz", "uuid"):
        text = text.strip(" ")  # the contract: spaces around a value are ignored, except in text
    return _PARSERS[kind](text)


def _integer(text: str, low: int, high: int):
    m = _INTEGER.fullmatch(text)
    if not m:
        return REJECT
    value = int(m.group(1))
    return value if low <= value <= high else REJECT


def _decimal(text: str, precision: int, scale: int):
    m = _DECIMAL.fullmatch(text)
    if not m:
        return REJECT
    try:
        value = Decimal(m.group(1))
    except InvalidOperation:
        return REJECT
    if value == 0:
        return Decimal(0)
    # Trailing zeros do not count: 1.500 needs one fractional digit. (Not normalize(): it
    # rounds to the context's 28 digits.)
    _, digits, exponent = value.as_tuple()
    while len(digits) > 1 and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    fraction_digits = max(0, -exponent)
    integer_digits = max(0, len(digits) + exponent)
    if fraction_digits > scale or integer_digits > precision - scale:
        return REJECT
    return value


def _double(text: str):
    m = _DOUBLE.fullmatch(text)
    if not m:
        return REJECT
    literal = m.group(1)
    value = float(literal)
    lowered = literal.lower().lstrip("+-")
    if lowered in ("inf", "infinity", "nan"):
        return value
    if math.isinf(value):
        return REJECT  # a finite text that overflows
    if value == 0 and Decimal(literal) != 0:
        return REJECT  # a non-zero text that underflows to zero
    return value


def _boolean(text: str):
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return REJECT


def _date(text: str):
    m = _DATE_ONLY.fullmatch(text)
    if not m:
        return REJECT
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return REJECT


def _clock(hour, minute, second, fraction) -> dt.time | None:
    fraction = fraction or ""
    if len(fraction) > 6 and fraction[6:].strip("0"):
        return None  # digits beyond microseconds must be zeros: never rounded
    try:
        return dt.time(int(hour), int(minute), int(second or 0), int((fraction[:6] or "0").ljust(6, "0")))
    except ValueError:
        return None


def _offset(text: str | None) -> dt.timedelta | None:
    if text is None:
        return None
    if text == "Z":
        return dt.timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    return sign * dt.timedelta(hours=hours, minutes=minutes)


def _wall_clock(text: str):
    """(naive datetime as written, offset or None), or None when the text is not a timestamp."""
    m = _TIMESTAMP.fullmatch(text)
    if not m:
        return None
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    if hour is None and offset is not None:
        return None  # a bare date with an offset is not in the grammar's spirit: 2024-01-01-03 reads as nonsense
    clock = _clock(hour or 0, minute or 0, second, fraction)
    if clock is None:
        return None
    try:
        return dt.datetime.combine(dt.date(int(year), int(month), int(day)), clock), _offset(offset)
    except ValueError:
        return None


def _timestamp(text: str):
    parsed = _wall_clock(text)
    if parsed is None:
        return REJECT
    value, offset = parsed
    try:
        return value - offset if offset is not None else value
    except OverflowError:
        return REJECT


def _timestamptz(text: str):
    parsed = _wall_clock(text)
    if parsed is None:
        return REJECT
    value, offset = parsed
    try:
        return (value - (offset or dt.timedelta(0))).replace(tzinfo=dt.UTC)
    except OverflowError:
        return REJECT


def _time(text: str):
    m = _TIME.fullmatch(text)
    if not m:
        return REJECT
    clock = _clock(*m.groups())
    return REJECT if clock is None else clock


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str):
    """JSON text as Python values, numbers exact (Decimal), NaN/Infinity refused."""
    return json.loads(text, parse_float=Decimal, parse_constant=_no_constants)


def _json(text: str):
    try:
        value = parse_json(text)
    except ValueError:
        return REJECT
    # The contract: a NUL character in a string or key rejects the document (PostgreSQL's jsonb
    # cannot hold it, and one document lands the same in every destination).
    return REJECT if _holds_nul(value) else JsonValue(value)


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _uuid(text: str):
    m = _UUID.fullmatch(text)
    if not m:
        return REJECT
    inner = m.group(1)
    if "-" in inner and not _HYPHENATED.fullmatch(inner):
        return REJECT  # hyphens only in the 8-4-4-4-12 places
    if (text.startswith("{")) != (text.endswith("}")):
        return REJECT
    return uuid.UUID(inner)


@dataclass(frozen=True)
class JsonValue:
    """A parsed JSON document; equal to another when it is the same JSON (numbers by value)."""

    value: object


_PARSERS = {
    "double": _double,
    "boolean": _boolean,
    "date": _date,
    "time": _time,
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "json": _json,
    "uuid": _uuid,
}


# Typed source values


def render(value) -> str | None:
    """A typed source value as text: integers as digits, doubles as Python's repr, decimals as
    plain digits, dates and times ISO 8601, booleans true/false."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, JsonValue):
        return json.dumps(value.value, default=str)
    if isinstance(value, NanoTimestamp):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class NanoTimestamp:
    """A timestamp with nanoseconds (Parquet timestamp[ns]); Python's datetime stops at microseconds."""

    nanos: int  # since the epoch
    zoned: bool = False

    def isoformat(self) -> str:
        seconds, nanos = divmod(self.nanos, 1_000_000_000)
        base = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
        text = base.isoformat(timespec="seconds") + f".{nanos:09d}"
        return text + ("+00:00" if self.zoned else "")


def expected(value, holder: str, target: str):
    """What a source value held as ``holder`` must become in a ``target`` column.

    ``holder`` is 'text' for text sources, else the typed source's type in target-type
    words ('bigint', 'decimal(12,3)', 'double', ...) or another name ('int8', 'float32',
    'timestamp_ns', ...) that no target shares.
    """
    if value is None:
        return None
    if holder == "text":
        return from_text(value, target)
    if same_type(holder, target):
        return _as_is(value, target)
    if holder == "float32" and base_type(target) == "decimal" and isinstance(value, float) and math.isfinite(value):
        import numpy as np

        # Into a decimal, a single-precision float is read as its shortest text that reads back as
        # the same float32 (0.1, not the 0.10000000149011612 of the double holding it).
        return from_text(str(np.float32(value)), target)
    return from_text(render(value), target)


def same_type(holder: str, target: str) -> bool:
    return holder.replace(" ", "").lower() == target.replace(" ", "").lower()


def _as_is(value, target: str):
    kind = base_type(target)
    if kind == "timestamptz" and isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    if kind == "varchar" and isinstance(value, str) and "\x00" in value:
        return REJECT
    return value
