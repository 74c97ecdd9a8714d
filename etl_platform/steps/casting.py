"""Exact conversion of source text to a column's type, compiled to DuckDB SQL.

DuckDB's own casts are lenient: ``'10.357'`` becomes the BIGINT 10, ``'0x1F'`` 31, a
timestamp's offset or its nanoseconds are dropped, a date-time becomes its date. A load must
never change a value that way (EXACT), so every text value is checked against the grammar of
its target type first and converted only when the conversion loses nothing; any other value
rejects its row, with the reason.

What each type accepts (surrounding spaces and tabs are ignored for every type but text):

- integers: an optional sign and digits, optionally ``.`` and zeros only (``10.0``, as pandas
  writes integers that sit beside a NULL); within the type's range.
- ``decimal(p,s)``: plain or exponent notation whose exact value needs at most ``s`` fractional
  digits (trailing zeros do not count) and fits ``p`` digits. Never rounded.
- ``double``: plain or exponent notation, ``nan``, ``inf``, ``infinity`` (signed, any case): the
  nearest double. A finite number that overflows, or a non-zero one that underflows to zero,
  is rejected.
- ``boolean``: true/false, t/f, yes/no, y/n, 1/0, any case.
- ``date``: ``YYYY-MM-DD``, optionally followed by midnight (``T00:00:00``); another time of
  day is rejected, not dropped. Years 1 to 9999, for dates and timestamps (in UTC) alike;
  besides, ``infinity``, ``-infinity`` and years before 1 in DuckDB's own ``YYYY-MM-DD (BC)``
  spelling (how a PostgreSQL source delivers them).
- ``timestamp`` / ``timestamptz``: ``YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][offset]`` with the
  offset ``Z``, ``±HH``, ``±HHMM`` or ``±HH:MM``; digits past microseconds must be zeros. A
  ``timestamp`` with an offset is converted to UTC; a ``timestamptz`` without one is UTC.
- ``time``: ``HH:MM[:SS[.fraction]]`` from 00:00 to 23:59:59.999999.
- ``json``: valid JSON, kept as written. ``uuid``: 32 hex digits, plain, hyphenated 8-4-4-4-12
  or in braces.
- ``varchar``: the text exactly as read.

A value holding a NUL character is rejected whatever its type: no destination can store it.
With a ``format`` (strptime) the whole text must match it, and a ``date`` must be at midnight.
"""

import re
from dataclasses import dataclass

from etl_platform.sql import json_lenient, literal

_INTEGER_TYPES = {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT"}
_S = " *"  # spaces around a value of any type but text are ignored
_NUMBER = rf"{_S}[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?{_S}"
_INTEGER = rf"{_S}[+-]?[0-9]+(\.0*)?{_S}"
_DECIMAL_PARTS = r"^ *[+-]?([0-9]*)\.?([0-9]*)(?:[eE]([+-]?[0-9]+))? *$"
_DECIMAL_PARTS_SIGNED = r"^ *([+-]?)([0-9]*)\.?([0-9]*)[eE]([+-]?[0-9]+) *$"
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_FRACTION = r"(\.[0-9]{0,6}0*)?"  # at most microseconds; further digits only zeros
_CLOCK = rf"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]{_FRACTION})?"
_OFFSET = r"(Z|z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)"  # -23:59 to +23:59
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}"
_UUID_TEXT = rf"{_S}({_UUID}|\{{({_UUID})\}}){_S}"
_DATE_TEXT = rf"{_S}{_DATE}([T ]00:00(:00(\.0*)?)?)?{_S}"  # a date, or one at midnight
_TIMESTAMP_TEXT = rf"{_S}{_DATE}([T ]{_CLOCK})?{_OFFSET}?{_S}"
_TIME_TEXT = rf"{_S}{_CLOCK}{_S}"
_ESCAPED_NUL = r"(^|[^\\])(\\\\)*\\u0000"  # \u0000 after an even number of backslashes (an escaped backslash is not)
_TRUE, _FALSE = ("true", "t", "yes", "y", "1"), ("false", "f", "no", "n", "0")


@dataclass(frozen=True)
class Conversion:
    """How text becomes a typed value: ``value(raw)`` is SQL for the value of the text ``raw``
    (a column of type VARCHAR); ``exact(raw, value)`` is SQL that is true when a non-NULL text
    converted without loss, given the column ``value`` holding ``value(raw)``. Kept apart so the
    conversion runs once per value, and the check reads its result."""

    target: str
    fmt: str | None = None

    def value(self, raw: str) -> str:
        return _value(raw, self.target.upper(), self.fmt)

    def exact(self, raw: str, value: str) -> str:
        target = self.target.upper()
        no_nul = f"NOT contains({raw}, chr(0))"
        if target in ("VARCHAR", "TEXT", "STRING"):
            return no_nul
        return f"({no_nul} AND coalesce({_exact(raw, value, target, self.fmt)}, false))"


def convert(target: str, fmt: str | None = None) -> Conversion:
    """The exact conversion of text to DuckDB type ``target``; ``fmt`` is a strptime format for
    date and timestamp targets."""
    return Conversion(target, fmt)


def _matches(text: str, pattern: str) -> str:
    return f"regexp_full_match({text}, {literal(pattern)})"


def _formatted(target: str, fmt: str | None) -> bool:
    return fmt is not None and target in ("DATE", "TIMESTAMP", "TIMESTAMPTZ")


def _value(raw: str, target: str, fmt: str | None) -> str:
    if target in ("VARCHAR", "TEXT", "STRING"):
        return raw
    if _formatted(target, fmt):
        return _formatted_value(raw, target, fmt)
    if target == "BOOLEAN":
        lowered = f"lower(trim({raw}))"
        return (
            f"CASE WHEN {lowered} IN ({', '.join(map(literal, _TRUE))}) THEN true "
            f"WHEN {lowered} IN ({', '.join(map(literal, _FALSE))}) THEN false END"
        )
    if target in ("TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"):
        with_offset = f"regexp_matches({raw}, {literal(_OFFSET + ' *$')})"
        instant, wall_clock = f"TRY_CAST({raw} AS TIMESTAMPTZ)", f"TRY_CAST({raw} AS TIMESTAMP)"
        if target == "TIMESTAMP":  # an offset is converted to UTC, never dropped
            return f"CASE WHEN {with_offset} THEN timezone('UTC', {instant}) ELSE {wall_clock} END"
        # without an offset the time is UTC, whatever the session's time zone
        return f"CASE WHEN {with_offset} THEN {instant} ELSE timezone('UTC', {wall_clock}) END"
    if target == "JSON":
        return f"TRY_CAST({raw} AS JSON)"
    if target.startswith("DECIMAL"):
        # DuckDB casts exponent notation to a decimal wrongly (1E-10 into DECIMAL(10,10) fails, a value
        # past the precision passes): it is rewritten in plain notation first.
        return (
            f"CASE WHEN {_has_exponent(raw)} THEN TRY_CAST({_plain_decimal(raw)} AS {target}) "
            f"ELSE TRY_CAST({raw} AS {target}) END"
        )
    return f"TRY_CAST({raw} AS {target})"


def _plain_decimal(raw: str) -> str:
    """SQL for the plain notation of a number written with an exponent (``1.5E-3`` -> ``0.0015``):
    its digits with the point moved. Beyond 100 places no decimal type holds it: NULL."""
    parts = f"regexp_extract({raw}, {literal(_DECIMAL_PARTS_SIGNED)}, ['s', 'i', 'f', 'e'])"
    digits = f"({parts}.i || {parts}.f)"
    point = f"(length({parts}.i) + TRY_CAST(nullif({parts}.e, '') AS INTEGER))"  # where the point goes, from the left
    plain = (
        f"CASE WHEN abs({point}) > 100 THEN NULL WHEN {point} <= 0 THEN '0.' || repeat('0', -{point}) || {digits} "
        f"WHEN {point} >= length({digits}) THEN {digits} || repeat('0', {point} - length({digits})) "
        f"ELSE left({digits}, {point}) || '.' || substr({digits}, {point} + 1) END"
    )
    return f"({parts}.s || {plain})"


def _exact(raw: str, value: str, target: str, fmt: str | None) -> str:
    present = f"{value} IS NOT NULL"
    if _formatted(target, fmt):
        if target == "DATE":  # a parsed time of day other than midnight would be dropped
            parsed = _formatted_value(raw, "TIMESTAMP", fmt)
            return f"{present} AND {parsed} = date_trunc('day', {parsed})"
        if "%n" in fmt:  # strptime rounds nanoseconds to microseconds: the last three digits must be zeros
            return f"{present} AND NOT regexp_matches({raw}, '[0-9]{{6}}0{{0,2}}[1-9]')"
        return present
    if target in _INTEGER_TYPES:
        return f"{_matches(raw, _INTEGER)} AND {present}"
    if target.startswith("DECIMAL"):
        return _decimal_exact(raw, present, target)
    if target in ("DOUBLE", "FLOAT", "REAL"):
        words = _matches(raw, rf"(?i){_S}[+-]?(nan|inf|infinity){_S}")
        mantissa = f"regexp_extract({raw}, '^[^eE]*')"
        finite = (
            f"isfinite({value}) AND (CASE WHEN {value} <> 0 THEN true ELSE NOT regexp_matches({mantissa}, '[1-9]') END)"
        )
        return f"{present} AND (CASE WHEN {_matches(raw, _NUMBER)} THEN {finite} ELSE {words} END)"
    if target == "BOOLEAN":
        return present
    if target == "JSON":
        # DuckDB's parser allows NaN, Infinity and trailing commas, which JSON does not (nor does
        # PostgreSQL's jsonb), and jsonb cannot hold \u0000: each rejects its row instead of a whole load.
        return (
            f"{present} AND NOT {json_lenient(f'{value}::VARCHAR')} "
            f"AND NOT regexp_matches({raw}, {literal(_ESCAPED_NUL)})"
        )
    if target == "DATE":
        regular = f"{_matches(raw, _DATE_TEXT)} AND {value} BETWEEN DATE '0001-01-01' AND DATE '9999-12-31'"
        return f"(CASE WHEN {regular} THEN true ELSE {_special_date(raw, value)} END)"
    if target in ("TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"):
        # Four-digit years in, four-digit years out: an offset may not carry 9999-12-31 into year 10000.
        utc = value if target == "TIMESTAMP" else f"timezone('UTC', {value})"
        regular = f"{_matches(raw, _TIMESTAMP_TEXT)} AND {present} AND year({utc}) BETWEEN 1 AND 9999"
        return f"(CASE WHEN {regular} THEN true ELSE {_special_date(raw, value)} END)"
    if target == "TIME":
        return f"{_matches(raw, _TIME_TEXT)} AND {present}"
    if target == "UUID":
        return f"{_matches(raw, _UUID_TEXT)} AND {present}"
    # A type the spec does not offer (a source's own type, loaded as it is): DuckDB's cast,
    # checked to give the same text back, so nothing that would change is accepted.
    return f"{value}::VARCHAR = {raw}"


def _has_exponent(raw: str) -> str:
    # contains() twice: lower() would copy every value first
    return f"(contains({raw}, 'e') OR contains({raw}, 'E'))"


def _special_date(raw: str, value: str) -> str:
    """``infinity``, ``-infinity`` and dates before year 1 written as DuckDB writes them
    (``0044-03-15 (BC)``, as a PostgreSQL source's are delivered): exact when DuckDB gives the
    same text back."""
    return (
        f"coalesce(regexp_matches({raw}, '^(-?infinity|[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}} \\(BC\\).*)$') "
        f"AND {value}::VARCHAR = {raw}, false)"
    )


def _decimal_exact(raw: str, present: str, target: str) -> str:
    """Exact when the value needs no more fractional digits than the scale. Plain notation is
    checked by one pattern; with an exponent, for digits D (integer and fraction parts) and
    exponent E, value = D x 10^(E - len(fraction)), and trailing zeros of D lower the
    fractional digits needed."""
    found = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", re.sub(r"\s+", "", target))
    scale = int(found.group(2)) if found else 0
    plain = rf"{_S}[+-]?([0-9]+(\.[0-9]{{0,{scale}}}0*)?|\.[0-9]{{0,{scale}}}0*){_S}"
    parts = f"regexp_extract({raw}, {literal(_DECIMAL_PARTS)}, ['i', 'f', 'e'])"
    digits, fraction = f"({parts}.i || {parts}.f)", f"{parts}.f"
    exponent = f"coalesce(TRY_CAST(nullif({parts}.e, '') AS INTEGER), 0)"
    trailing_zeros = f"(length({digits}) - length(rtrim({digits}, '0')))"
    needed = (
        f"CASE WHEN rtrim({digits}, '0') = '' THEN 0 "
        f"ELSE greatest(0, length({fraction}) - {exponent} - {trailing_zeros}) END"
    )
    with_exponent = f"{_matches(raw, _NUMBER)} AND {needed} <= {scale}"
    return (
        f"{present} AND (CASE WHEN {_matches(raw, plain)} THEN true "
        f"WHEN {_has_exponent(raw)} THEN {with_exponent} ELSE false END)"
    )


def _formatted_value(raw: str, target: str, fmt: str) -> str:
    parsed = f"try_strptime(trim({raw}), {literal(fmt)})"
    zoned = "%z" in fmt or "%Z" in fmt
    if target == "TIMESTAMPTZ":
        return parsed if zoned else f"timezone('UTC', {parsed})"
    wall_clock = f"timezone('UTC', {parsed})" if zoned else parsed
    return wall_clock if target == "TIMESTAMP" else f"CAST({wall_clock} AS DATE)"
