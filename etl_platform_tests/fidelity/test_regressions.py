"""Findings of the generated cases, shrunk to one column: each a behaviour a user sees.

Every example here failed on the platform when it was written (see the report of the
fidelity harness); each is the smallest table that shows its finding.
"""

import datetime as dt

import pytest

from etl_platform_tests.fidelity import harness
from etl_platform_tests.fidelity.platform import DESTINATION_KINDS

pytestmark = pytest.mark.fidelity

UTC = dt.UTC

# (id, source kind, target type, values as the source holds them, holder)
VALUE_CASES = [
    ("a_fraction_in_an_integer_column_rejects_its_row", "csv", "bigint", ["10.5"], "text"),
    ("hex_in_an_integer_column_rejects_its_row", "csv", "bigint", ["0x1F"], "text"),
    ("an_exponent_in_an_integer_column_rejects_its_row", "csv", "bigint", ["1e3"], "text"),
    (
        "a_quoted_empty_string_in_an_integer_column_is_rejected_not_null",
        "csv-postgres-copy",
        "bigint",
        ["", "5"],
        "text",
    ),
    ("digits_beyond_the_scale_reject_the_row_instead_of_rounding", "csv", "decimal(12,0)", ["0.1"], "text"),
    ("an_underscore_in_a_decimal_rejects_its_row", "ndjson", "decimal(18,2)", ["1_0"], "text"),
    ("a_decimal_at_the_smallest_step_of_its_scale_lands", "csv", "decimal(38,38)", ["1E-38"], "text"),
    ("a_uuid_with_misplaced_hyphens_is_rejected", "ndjson", "uuid", ["a8098c1a-f86e11da-bd1a-00112444be1e"], "text"),
    ("nan_is_not_json", "ndjson", "json", ["NaN"], "text"),
    ("an_offset_is_converted_to_utc_for_a_timestamp_column", "csv", "timestamp", ["2024-01-01T10:00:00+05"], "text"),
    (
        "nanoseconds_that_are_not_zeros_reject_a_timestamp",
        "csv",
        "timestamp",
        ["2024-01-01T10:00:00.123456789"],
        "text",
    ),
    ("a_time_of_day_is_not_truncated_into_a_date_column", "csv", "date", ["2024-01-01T10:00:00"], "text"),
    ("a_24_00_time_is_rejected", "csv", "time", ["24:00:00"], "text"),
    ("a_double_into_a_decimal_uses_its_shortest_text", "postgres", "decimal(18,4)", [0.1 + 0.2], "double"),
    (
        "a_timestamp_into_a_time_column_is_rejected_not_truncated",
        "postgres",
        "time",
        [dt.datetime(2024, 2, 29, 12, 0, 0, 1)],
        "timestamp",
    ),
    ("a_nul_in_a_database_text_rejects_its_row", "mariadb", "varchar", ["a\x00b", "fine"], "text"),
    ("a_json_number_literal_keeps_its_digits_into_varchar", "ndjson", "varchar", ["1.50"], "text"),
]


@pytest.mark.parametrize(
    ("source", "target", "values", "holder"), [c[1:] for c in VALUE_CASES], ids=[c[0] for c in VALUE_CASES]
)
def test_a_value_lands_exactly_or_is_rejected(env, source, target, values, holder):
    kind = harness.SOURCE_KINDS[source]
    for needed in (*kind.needs, "postgres"):
        env.services(needed)
    table = harness.one_column(target, values, holder)
    json_forms = (1,) if source == "ndjson" and target == "varchar" else (0,)
    result = harness.check_replace(
        env, kind, DESTINATION_KINDS, table, harness.FixedChoices(json_forms=json_forms), test="regressions"
    )
    harness.assert_exact(result, table)


def test_a_json_document_postgresql_cannot_hold_rejects_its_row_not_the_load(env):
    """jsonb holds no \\u0000: that row is rejected with the reason, the others land."""
    env.services("postgres")
    table = harness.one_column("json", ['{"a":"\\u0000"}', '{"a":1}'])
    result = harness.check_replace(
        env, harness.SOURCE_KINDS["ndjson"], ("postgres",), table, harness.FixedChoices(), test="regressions"
    )
    findings = [f for f in result.findings if f.weight != "record"]
    assert not any("load failed" in f.cause for f in findings), harness.failure_text(result, table)


def test_a_csv_record_spanning_lines_is_rejected_with_the_line_it_starts_on(env):
    """A quoted value holding a line break: the next record's rejection names its physical line."""
    table = harness.one_column("bigint", ["1", "x"], source_name="n")
    table = harness.Table(
        (
            harness.Column(
                "note",
                "note",
                "varchar",
                "text",
                (harness.Sample("two\nlines", "newline"), harness.Sample("one", "word")),
            ),
            *table.columns,
        ),
        table.rids,
    )
    result = harness.check_replace(
        env, harness.SOURCE_KINDS["csv"], ("warehouse",), table, harness.FixedChoices(), test="regressions"
    )
    assert not [f for f in result.findings if f.cause in ("source_line",)], harness.failure_text(result, table)


def test_a_value_that_does_not_convert_is_rejected_with_kind_rule(env):
    table = harness.one_column("bigint", ["x"])
    result = harness.check_replace(
        env, harness.SOURCE_KINDS["csv"], ("warehouse",), table, harness.FixedChoices(), test="regressions"
    )
    assert not [f for f in result.findings if "kind" in f.cause], harness.failure_text(result, table)
