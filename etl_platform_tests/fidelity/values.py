"""Generated values of every target type, with their edge cases, each labelled with its class.

A value is ``Sample(value, label)``: ``value`` is what the source holds (a text, or a typed
Python value), ``label`` the edge class it stands for ("max+1", "exponent", "offset", ...),
which the type table groups by. Texts come from fixed edge lists mixed with generated ones.
"""

import datetime as dt
import string
import uuid
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import strategies as st

from etl_platform_tests.fidelity.oracle import INTEGER_RANGES, JsonValue, NanoTimestamp


@dataclass(frozen=True)
class Sample:
    value: object
    label: str

    def __repr__(self) -> str:
        shown = (
            self.value
            if not isinstance(self.value, str) or len(self.value) < 60
            else f"{self.value[:20]}...({len(self.value)} chars)"
        )
        return f"{shown!r}"


LONG_TEXT = "x" * 99_990 + "é末尾 end"  # 100k characters

FORMULAS = ["=1+1", "+1", "-1", "@x", '=HYPERLINK("http://x")', "\tlead tab", "\rlead cr"]
COMMON = [
    (None, "null"),
    ("", "empty"),
    (" ", "whitespace"),
    ("\t", "whitespace"),
    ("\n", "whitespace"),
    ("abc", "word"),
]

_VARCHAR = [
    ("e\u0301", "combining"),
    ("😀🇩🇪", "emoji"),
    ("שלום עולם", "rtl"),
    ("مرحبا", "rtl"),
    ('say "hi"', "quotes"),
    ("it's", "quotes"),
    ('"', "quotes"),
    ("a,b;c\td|e", "delimiters"),
    ("line\nbreak", "newline"),
    ("cr\rhere", "cr"),
    ("crlf\r\nhere", "crlf"),
    ("  padded  ", "padded"),
    ("NULL", "null-like"),
    ("null", "null-like"),
    ("\\N", "null-like"),
    ("NaN", "null-like"),
    ("0042", "digits"),
    ("1e3", "digits"),
    ("Ω≈ç√∫", "unicode"),
    ("\u200b", "zero-width"),
    *((f, "formula") for f in FORMULAS),
]


def _ints(kind: str) -> list[tuple[str, str]]:
    low, high = INTEGER_RANGES[kind]
    return [
        ("0", "zero"),
        ("-0", "zero"),
        ("+5", "sign"),
        (" 7 ", "padded"),
        ("007", "leading zeros"),
        (str(low), "min"),
        (str(high), "max"),
        (str(low - 1), "min-1"),
        (str(high + 1), "max+1"),
        ("10.0", "zero fraction"),
        ("10.00", "zero fraction"),
        ("10.5", "fraction"),
        ("1e3", "exponent"),
        ("0x1F", "hex"),
        ("1_000", "underscore"),
        ("1,000", "thousands"),
        ("1 000", "thousands"),
        ("- 5", "sign"),
        ("5-", "sign"),
        ("١٢", "non-ascii digits"),
    ]


_DOUBLES = [
    ("nan", "nan"),
    ("NaN", "nan"),
    ("-nan", "nan"),
    ("inf", "inf"),
    ("-Infinity", "inf"),
    ("+inf", "inf"),
    ("-0.0", "-0.0"),
    ("0.0", "zero"),
    ("1e308", "large"),
    ("1e309", "overflow"),
    ("1.7976931348623157e308", "max"),
    ("1.7976931348623159e308", "overflow"),
    ("1e-400", "underflow"),
    ("4.9e-324", "subnormal"),
    ("2.2250738585072014e-308", "min normal"),
    ("0.1", "fraction"),
    ("1.0000000000000002", "ulp"),
    ("0.30000000000000004", "ulp"),
    (" 2.5 ", "padded"),
    ("1_0", "underscore"),
    ("0x10", "hex"),
    ("1,5", "thousands"),
    ("1.5E+3", "exponent"),
    ("9007199254740993", "2^53+1"),
    ("123456789012345678901234567890", "many digits"),
]

_BOOLEANS = [
    ("true", "word"),
    ("FALSE", "word"),
    ("t", "letter"),
    ("F", "letter"),
    ("yes", "word"),
    ("No", "word"),
    ("y", "letter"),
    ("N", "letter"),
    ("1", "digit"),
    ("0", "digit"),
    (" true ", "padded"),
    ("2", "digit"),
    ("on", "other"),
    ("off", "other"),
    ("tru", "other"),
    ("TrUe", "word"),
]

_DATES = [
    ("2024-02-29", "leap day"),
    ("2023-02-29", "not leap"),
    ("2024-02-30", "feb 30"),
    ("2024-01-01T00:00:00", "midnight"),
    ("2024-01-01 00:00", "midnight"),
    ("2024-01-01T00:00:00.000", "midnight"),
    ("2024-01-01T10:00:00", "time of day"),
    ("2024-1-1", "short"),
    ("20240101", "compact"),
    ("0001-01-01", "min"),
    ("9999-12-31", "max"),
    ("2024-13-01", "invalid"),
    ("01/02/2024", "other format"),
    ("2024-03-10", "dst"),
    (" 2024-01-01", "padded"),
    ("2024-01-01Z", "offset"),
]

_TIMES = [
    ("00:00", "short"),
    ("23:59:59.999999", "max"),
    ("24:00:00", "24:00"),
    ("12:30", "short"),
    ("12:30:45.1234567", "7+ digits"),
    ("12:30:45.123000000", "9 digits, zeros"),
    ("12:60:00", "invalid"),
    ("1:02:03", "short hour"),
    ("12:30:45Z", "offset"),
    ("12:30:45+05", "offset"),
    ("12:30:45.5", "fraction"),
]

_TIMESTAMPS = [
    ("2024-01-01T10:00:00", "plain"),
    ("2024-01-01 10:00", "no seconds"),
    ("2024-01-01T10:00:00Z", "Z"),
    ("2024-01-01T10:00:00+05", "offset"),
    ("2024-01-01T10:00:00-03:30", "offset"),
    ("2024-01-01T10:00:00+0545", "offset"),
    ("2024-01-01T10:00:00+14:00", "offset"),
    ("2024-01-01 10:00:00-12", "offset"),
    ("2024-01-01T10:00:00.123456789", "9 digits"),
    ("2024-01-01T10:00:00.123456000", "9 digits, zeros"),
    ("2024-01-01T10:00:00.1234567", "7 digits"),
    ("2024-03-10T02:30:00", "dst gap"),
    ("2024-11-03T01:30:00-04:00", "dst fold"),
    ("2024-02-29T23:59:59.999999", "leap day"),
    ("2023-02-29T00:00:00", "not leap"),
    ("2024-02-30 12:00", "feb 30"),
    ("2024-01-01", "date only"),
    ("2024-01-01T24:00:00", "24:00"),
    ("0001-01-01T00:00:00", "min"),
    ("9999-12-31T23:59:59.999999", "max"),
    ("9999-12-31T23:00:00-05", "overflow"),
    ("2024-01-01T10:00:60", "leap second"),
    ("2024-01-01T10:00:00 +05", "space offset"),
    ("2024-01-01T10:00:00+05:30:00", "seconds offset"),
]

_JSON = [
    ('{"a":1}', "object"),
    ('[1,2,{"b":[null,true]}]', "nested"),
    ("123456789012345678901234567890.123456789", "many digits"),
    ('"text"', "string"),
    ("null", "json null"),
    ('{"a":', "invalid"),
    ("NaN", "invalid"),
    ('{"a":1,"a":2}', "duplicate key"),
    ('  {"x": 1}  ', "padded"),
    ('{"e":1e400}', "huge number"),
    ('{"n":0.1000000000000000055511151231257827}', "many digits"),
    ('{"k":"é😀\\n"}', "unicode"),
    ("[]", "empty"),
    ("{}", "empty"),
    ("tru", "invalid"),
    ("1.50", "trailing zeros"),
]

_UUIDS = [
    ("a8098c1a-f86e-11da-bd1a-00112444be1e", "canonical"),
    ("A8098C1A-F86E-11DA-BD1A-00112444BE1E", "upper"),
    ("{a8098c1a-f86e-11da-bd1a-00112444be1e}", "braces"),
    ("a8098c1af86e11dabd1a00112444be1e", "no hyphens"),
    ("a8098c1a-f86e11da-bd1a-00112444be1e", "bad hyphens"),
    ("a8098c1a-f86e-11da-bd1a-00112444be1", "short"),
    ("not-a-uuid", "invalid"),
    ("{a8098c1af86e11dabd1a00112444be1e}", "braces"),
    ("a8098c1a-f86e-11da-bd1a-00112444be1e}", "half brace"),
    ("00000000-0000-0000-0000-000000000000", "nil"),
    ("urn:uuid:a8098c1a-f86e-11da-bd1a-00112444be1e", "urn"),
]


def _decimal_edges(precision: int, scale: int) -> list[tuple[str, str]]:
    whole = precision - scale
    biggest = ("9" * whole or "0") + ("." + "9" * scale if scale else "")
    edges = [
        (biggest, "max"),
        ("-" + biggest, "min"),
        ("1" + "0" * whole, "beyond precision"),
        ("0." + "0" * scale + "1", "beyond scale"),
        ("1.500", "trailing zeros"),
        ("1.5e1", "exponent"),
        ("-0.00", "zero"),
        ("1E-" + str(scale), "exponent"),
        (" 3 ", "padded"),
        ("1,5", "thousands"),
        ("0x10", "hex"),
        ("1_0", "underscore"),
        ("1." + "0" * (scale + 3), "trailing zeros"),
        ("nan", "nan"),
        ("inf", "inf"),
    ]
    return edges


def _with_common(edges: list[tuple[str | None, str]]) -> st.SearchStrategy[Sample]:
    return st.sampled_from([Sample(v, label) for v, label in [*COMMON, *edges]])


def _generated_text() -> st.SearchStrategy[Sample]:
    return st.text(max_size=12).map(lambda t: Sample(t, "generated"))


def _generated_for(target: str) -> st.SearchStrategy[Sample]:
    kind = target.split("(")[0]
    if kind in INTEGER_RANGES:
        low, high = INTEGER_RANGES[kind]
        return st.integers(low - 2, high + 2).map(lambda n: Sample(str(n), "generated"))
    if kind == "decimal":
        precision, scale = (int(x) for x in target[target.index("(") + 1 : -1].split(","))
        return (
            st.decimals(allow_nan=False, allow_infinity=False, places=scale)
            .filter(lambda d: len(d.as_tuple().digits) <= precision + 1)
            .map(lambda d: Sample(format(d, "f"), "generated"))
        )
    if kind == "double":
        return st.floats().map(lambda f: Sample(repr(f), "generated"))
    if kind == "boolean":
        return st.sampled_from(["true", "false", "1", "0"]).map(lambda t: Sample(t, "generated"))
    if kind == "date":
        return st.dates().map(lambda d: Sample(d.isoformat(), "generated"))
    if kind == "time":
        return st.times().map(lambda t: Sample(t.isoformat(), "generated"))
    if kind in ("timestamp", "timestamptz"):
        return st.tuples(
            st.datetimes(), st.sampled_from(["", "Z", "+02:00", "-0530", "+05"]), st.sampled_from(["T", " "])
        ).map(lambda p: Sample(p[0].isoformat(sep=p[2]) + p[1], "generated"))
    if kind == "json":
        return json_documents().map(lambda j: Sample(_dump(j.value), "generated"))
    if kind == "uuid":
        return st.uuids().map(lambda u: Sample(str(u), "generated"))
    return _generated_text()


def _dump(value) -> str:
    import json

    return json.dumps(value, default=lambda d: format(d, "f"), ensure_ascii=False)


def json_documents() -> st.SearchStrategy[JsonValue]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(10**30), 10**30)
        | st.text(max_size=6)
        | st.decimals(allow_nan=False, allow_infinity=False, places=4).filter(lambda d: abs(d) < 10**20)
    )
    tree = st.recursive(
        scalars,
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
        max_leaves=6,
    )
    return tree.map(JsonValue)


def text_samples(target: str, *, long_text: bool = True) -> st.SearchStrategy[Sample]:
    """Texts for a ``target`` column: the type's edge values, the common ones, and generated ones."""
    kind = target.split("(")[0]
    edges: list[tuple[str | None, str]]
    if kind == "varchar":
        edges = _VARCHAR + ([(LONG_TEXT, "long")] if long_text else [])
    elif kind in INTEGER_RANGES:
        edges = _ints(kind)
    elif kind == "decimal":
        precision, scale = (int(x) for x in target[target.index("(") + 1 : -1].split(","))
        edges = _decimal_edges(precision, scale)
    else:
        edges = {
            "double": _DOUBLES,
            "boolean": _BOOLEANS,
            "date": _DATES,
            "time": _TIMES,
            "timestamp": _TIMESTAMPS,
            "timestamptz": _TIMESTAMPS,
            "json": _JSON,
            "uuid": _UUIDS,
        }[kind]
    return st.one_of(_with_common(edges), _generated_for(target))


# Typed values, for sources that hold types


def _typed_edges(holder: str) -> list[Sample]:
    kind = holder.split("(")[0]
    if kind in INTEGER_RANGES:
        low, high = INTEGER_RANGES[kind]
        return [
            Sample(v, lbl) for v, lbl in [(0, "zero"), (low, "min"), (high, "max"), (-1, "negative"), (10, "small")]
        ]
    if kind == "double":
        return [
            Sample(v, lbl)
            for v, lbl in [
                (float("nan"), "nan"),
                (float("inf"), "inf"),
                (float("-inf"), "inf"),
                (-0.0, "-0.0"),
                (0.1, "fraction"),
                (5e-324, "subnormal"),
                (1.7976931348623157e308, "max"),
                (10.0, "integral"),
                (1e20, "exponent"),
                (0.1 + 0.2, "ulp"),
                (2.0**53 + 2, "2^53"),
                (123.456, "fraction"),
            ]
        ]
    if kind == "decimal":
        precision, scale = (int(x) for x in holder[holder.index("(") + 1 : -1].split(","))
        whole = precision - scale
        biggest = Decimal(("9" * whole or "0") + ("." + "9" * scale if scale else ""))
        return [
            Sample(v, lbl)
            for v, lbl in [
                (biggest, "max"),
                (biggest.copy_negate(), "min"),
                (Decimal(0), "zero"),
                (Decimal(1).scaleb(-scale) if scale else Decimal(1), "smallest step"),
            ]
        ]
    if kind == "boolean":
        return [Sample(True, "true"), Sample(False, "false")]
    if kind == "date":
        return [
            Sample(v, lbl)
            for v, lbl in [
                (dt.date(2024, 2, 29), "leap day"),
                (dt.date(1, 1, 1), "min"),
                (dt.date(9999, 12, 31), "max"),
                (dt.date(1970, 1, 1), "epoch"),
            ]
        ]
    if kind == "time":
        return [
            Sample(v, lbl)
            for v, lbl in [
                (dt.time(0), "midnight"),
                (dt.time(23, 59, 59, 999999), "max"),
                (dt.time(12, 30, 45, 123456), "fraction"),
            ]
        ]
    if kind == "timestamp":
        return [
            Sample(v, lbl)
            for v, lbl in [
                (dt.datetime(2024, 3, 10, 2, 30), "dst gap"),
                (dt.datetime(1, 1, 1), "min"),
                (dt.datetime(9999, 12, 31, 23, 59, 59, 999999), "max"),
                (dt.datetime(2024, 1, 1), "midnight"),
                (dt.datetime(2024, 2, 29, 12, 0, 0, 1), "leap day"),
            ]
        ]
    if kind == "timestamptz":
        return [
            Sample(v, lbl)
            for v, lbl in [
                (dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC), "utc"),
                (dt.datetime(2024, 11, 3, 5, 30, tzinfo=dt.UTC), "dst fold"),
                (dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45))), "offset"),
                (dt.datetime(1900, 1, 1, tzinfo=dt.UTC), "old"),
                (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "midnight"),
            ]
        ]
    if kind == "uuid":
        return [Sample(uuid.UUID(int=0), "nil"), Sample(uuid.UUID("a8098c1a-f86e-11da-bd1a-00112444be1e"), "v1")]
    if kind == "json":
        return [
            Sample(JsonValue(v), lbl)
            for v, lbl in [
                ({"a": [1, {"b": None}]}, "nested"),
                ([], "empty"),
                ({"n": Decimal("123456789012345678901234567890.5")}, "many digits"),
                ("text", "string"),
                (None, "json null"),
            ]
        ]
    if kind == "timestamp_ns":
        return [
            Sample(NanoTimestamp(1_700_000_000_123_456_789), "nanoseconds"),
            Sample(NanoTimestamp(1_700_000_000_123_456_000), "microseconds"),
        ]
    if kind == "float32":
        return [Sample(v, lbl) for v, lbl in [(0.5, "exact"), (0.10000000149011612, "fraction"), (float("nan"), "nan")]]
    return []


def typed_samples(holder: str, text_alphabet: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Sample]:
    """Typed Python values a source can hold in a column of ``holder`` type, edges first."""
    kind = holder.split("(")[0]
    if kind in INTEGER_RANGES:
        low, high = INTEGER_RANGES[kind]
        generated = st.integers(low, high)
    elif kind == "double":
        generated = st.floats()
    elif kind == "float32":
        generated = st.floats(width=32)
    elif kind == "decimal":
        precision, scale = (int(x) for x in holder[holder.index("(") + 1 : -1].split(","))
        # From text: Decimal arithmetic (scaleb, negation) rounds to the context's 28 digits.
        generated = st.integers(-(10**precision) + 1, 10**precision - 1).map(lambda n, s=scale: Decimal(f"{n}E-{s}"))
    elif kind == "boolean":
        generated = st.booleans()
    elif kind == "date":
        generated = st.dates()
    elif kind == "time":
        generated = st.times()
    elif kind == "timestamp":
        generated = st.datetimes()
    elif kind == "timestamptz":
        generated = st.datetimes(
            min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(dt.UTC)
        )
    elif kind == "uuid":
        generated = st.uuids()
    elif kind == "json":
        generated = json_documents()
    elif kind == "timestamp_ns":
        generated = st.integers(-(2**62), 2**62).map(NanoTimestamp)
    else:  # varchar
        generated = st.text(alphabet=text_alphabet, max_size=12) if text_alphabet is not None else st.text(max_size=12)
    edges = _typed_edges(holder)
    samples = generated.map(lambda v: Sample(v, "generated"))
    # Edge values half the time, NULL a quarter: the edges are where conversions go wrong.
    edge = st.sampled_from(edges) if edges else samples
    options = [samples, edge, edge, st.just(Sample(None, "null"))]
    return st.one_of(*options)


def decimal_types() -> st.SearchStrategy[str]:
    """decimal(p,s) with p up to 38 and s from 0 to p, the limits more often."""
    limits = st.sampled_from(
        ["decimal(38,0)", "decimal(38,38)", "decimal(18,2)", "decimal(1,0)", "decimal(38,10)", "decimal(10,10)"]
    )
    generated = st.integers(1, 38).flatmap(lambda p: st.integers(0, p).map(lambda s: f"decimal({p},{s})"))
    return st.one_of(limits, generated)


PLAIN_TYPES = (
    "varchar",
    "bigint",
    "integer",
    "smallint",
    "double",
    "boolean",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "json",
    "uuid",
)


def target_types() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(PLAIN_TYPES), decimal_types())


# Column names: the source's (any text a header can hold) and the target's (identifiers)

SOURCE_NAMES = [
    "Amount spent (USD)",
    "naïve name",
    'quote"d',
    "it's",
    "MixedCase",
    "日本語",
    "emoji 😀",
    "a;b",
    "tab\tin",
    "x",
    "Spaces  twice",
    "UPPER",
    "שם",
    "percent %",
    "dot.name",
    "comma, here",
]
TARGET_NAMES = [
    "amount",
    "Spend",
    "clickCount",
    "c0",
    "naive",
    "quoted",
    "its",
    "mixed",
    "ja",
    "emoji",
    "ab",
    "tabbed",
    "spaces",
    "upper",
    "shem",
    "percent",
]


def text_alphabet_without(excluded: str) -> st.SearchStrategy[str]:
    return st.characters(blacklist_characters=excluded, blacklist_categories=("Cs",))


ASCII_SAFE = string.ascii_letters + string.digits + " "
