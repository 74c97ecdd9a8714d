"""The oracle and our CSV reader checked on their own: the contract's examples, and round trips
through Python's own formatting. A wrong oracle would report findings that are not there."""

import csv
import datetime as dt
import io
import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform_tests.conftest import examples
from etl_platform_tests.fidelity import csv_text
from etl_platform_tests.fidelity.oracle import REJECT, JsonValue, expected, from_text

pytestmark = pytest.mark.fidelity

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "target", "value"),
    [
        ("", "varchar", ""),
        (" a ", "varchar", " a "),
        ("10.0", "bigint", 10),
        (" -7 ", "integer", -7),
        ("+5", "smallint", 5),
        ("10.5", "bigint", REJECT),
        ("1e3", "bigint", REJECT),
        ("0x1F", "bigint", REJECT),
        ("1_000", "bigint", REJECT),
        ("1,000", "bigint", REJECT),
        ("32768", "smallint", REJECT),
        ("-32768", "smallint", -32768),
        ("", "bigint", REJECT),
        ("1.500", "decimal(2,1)", Decimal("1.5")),
        ("1.55", "decimal(3,1)", REJECT),
        ("100", "decimal(3,1)", REJECT),
        ("1.5e2", "decimal(4,0)", Decimal(150)),
        (
            "0.99999999999999999999999999999999999999",
            "decimal(38,38)",
            Decimal("0.99999999999999999999999999999999999999"),
        ),
        ("-0.0", "double", -0.0),
        ("1e309", "double", REJECT),
        ("1e-400", "double", REJECT),
        ("-Infinity", "double", float("-inf")),
        ("1_0", "double", REJECT),
        (" YES ", "boolean", True),
        ("0", "boolean", False),
        ("on", "boolean", REJECT),
        ("2024-02-29", "date", dt.date(2024, 2, 29)),
        ("2023-02-29", "date", REJECT),
        ("2024-01-01T00:00:00.000", "date", dt.date(2024, 1, 1)),
        ("2024-01-01T10:00:00", "date", REJECT),
        ("23:59:59.999999", "time", dt.time(23, 59, 59, 999999)),
        ("24:00:00", "time", REJECT),
        ("12:30:45.1234567", "time", REJECT),
        ("12:30:45.123000000", "time", dt.time(12, 30, 45, 123000)),
        ("2024-01-01T10:00:00+05", "timestamp", dt.datetime(2024, 1, 1, 5)),
        ("2024-01-01 10:00-03:30", "timestamp", dt.datetime(2024, 1, 1, 13, 30)),
        ("2024-01-01T10:00:00Z", "timestamptz", dt.datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01T10:00:00", "timestamptz", dt.datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01T10:00:00.123456789", "timestamp", REJECT),
        ("9999-12-31T23:00:00-05", "timestamp", REJECT),
        ('{"a": [1, 2.50]}', "json", JsonValue({"a": [1, Decimal("2.50")]})),
        ("NaN", "json", REJECT),
        ("null", "json", JsonValue(None)),
        ("{A8098C1A-F86E-11DA-BD1A-00112444BE1E}", "uuid", uuid.UUID("a8098c1a-f86e-11da-bd1a-00112444be1e")),
        ("a8098c1af86e11dabd1a00112444be1e", "uuid", uuid.UUID("a8098c1a-f86e-11da-bd1a-00112444be1e")),
        ("a8098c1a-f86e11da-bd1a-00112444be1e", "uuid", REJECT),
        ("a\x00b", "varchar", REJECT),
        ("1\x00", "bigint", REJECT),
    ],
)
def test_the_oracle_applies_the_contract(text, target, value):
    got = from_text(text, target)
    if isinstance(value, float):
        assert repr(got) == repr(value)
    else:
        assert got == value


@settings(max_examples=examples(200))
@given(
    st.integers(1, 38)
    .flatmap(lambda p: st.tuples(st.just(p), st.integers(0, p)))
    .flatmap(lambda ps: st.tuples(st.just(ps), st.integers(-(10 ** ps[0]) + 1, 10 ** ps[0] - 1)))
)
def test_every_decimal_that_fits_is_accepted_exactly(drawn):
    (precision, scale), digits = drawn
    value = Decimal(f"{digits}E-{scale}")  # from text: Decimal arithmetic rounds to 28 digits
    assert from_text(format(value, "f"), f"decimal({precision},{scale})") == value
    text = format(value, "f")
    padded = text + ("" if "." in text else ".") + "000"
    assert from_text(padded, f"decimal({precision},{scale})") == value  # trailing zeros do not count
    if abs(digits) >= 10 ** (precision - 1) and precision > scale:
        # the largest digits of this precision need one more whole digit in a column one smaller
        shifted = Decimal(f"{digits}E-{scale - 1}") if scale else Decimal(f"{digits}0")
        assert from_text(format(shifted, "f"), f"decimal({precision},{scale})") is REJECT


@settings(max_examples=examples(200))
@given(st.floats())
def test_a_double_renders_and_reads_back_bit_for_bit(value):
    got = expected(value, "double", "double")
    assert repr(got) == repr(value)
    got = from_text(repr(value), "double")
    assert repr(got) == repr(value)


@settings(max_examples=examples(100))
@given(
    st.datetimes(
        timezones=st.sampled_from(
            [UTC, dt.timezone(dt.timedelta(hours=5, minutes=45)), dt.timezone(dt.timedelta(hours=-3))]
        )
    )
)
def test_a_timestamp_with_an_offset_is_the_same_instant(moment):
    try:
        in_utc = moment.astimezone(UTC)
    except OverflowError:
        return
    assert from_text(moment.isoformat(), "timestamptz") == in_utc
    assert from_text(moment.isoformat(), "timestamp") == in_utc.replace(tzinfo=None)


@settings(max_examples=examples(100))
@given(
    st.lists(st.lists(st.one_of(st.text(), st.none()), min_size=2, max_size=2), max_size=5),
    st.sampled_from([",", ";", "\t"]),
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    st.sampled_from(["\r\n", "\n"]),
)
def test_our_csv_reader_reads_what_pythons_csv_module_writes(rows, delimiter, quoting, line_end):
    if quoting == csv.QUOTE_MINIMAL and line_end == "\n" and any(v and "\r" in v for row in rows for v in row):
        return  # Python 3.11 leaves a CR unquoted then: the file itself cannot say where the line ends
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator=line_end).writerows([["a", "b"], *rows])
    records = csv_text.records(out.getvalue(), delimiter)
    assert [[f.text for f in fields] for _, fields in records] == [
        ["a", "b"],
        *[[v or "" for v in row] for row in rows],
    ]
    line = 1
    for (start, _), raw in zip(records, [["a", "b"], *rows]):
        assert start == line
        line += 1 + sum(v.count("\n") for v in raw if v)
