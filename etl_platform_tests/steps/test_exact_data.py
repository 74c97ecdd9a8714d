"""EXACT: a value lands exactly as the source holds it, or its row is rejected with the reason."""

import datetime
import json
import uuid
from decimal import Decimal
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_platform.spec.pipeline import PipelineSpec
from etl_platform_tests.conftest import examples
from etl_platform_tests.steps.test_ingest import con, load, make_spec, rejected  # noqa: F401 - con is a fixture


def _landing(tmp_path: Path, name: str, content: str | bytes) -> Path:
    landing = tmp_path / "landing"
    landing.mkdir(exist_ok=True)
    (landing / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return landing


def _rows(con, order: str = "n") -> list[tuple]:
    return con.execute(f"SELECT * EXCLUDE (_source_file, _load_id) FROM p.t ORDER BY {order}").fetchall()


def test_integer_columns_reject_fractional_hex_and_exponent_text_instead_of_rounding(con, tmp_path):
    landing = _landing(
        tmp_path, "a.csv", "n,v\n1,10.357\n2,1.5\n3,0x1F\n4,1e3\n5,1_000\n6,10.0\n7, 42 \n8,+5\n9,9223372036854775808\n"
    )
    spec = make_spec("*.csv", {"n": {"type": "bigint"}, "v": {"type": "bigint"}})

    result = load(con, spec, landing)

    assert _rows(con) == [(6, 10), (7, 42), (8, 5)]
    reasons = {line: reasons for _, line, _, reasons, _ in rejected(con)}
    assert reasons == {line: ["v: not a valid bigint"] for line in (2, 3, 4, 5, 6, 10)}
    assert (result.rows_read, result.rows_accepted, result.rows_rejected) == (9, 3, 6)


def test_decimal_columns_reject_digits_beyond_the_scale_instead_of_rounding(con, tmp_path):
    landing = _landing(
        tmp_path, "a.csv", "n,v\n1,1.239\n2,1.230\n3,99999999999999.99\n4,1.5e1\n5,1.25e-1\n6,100e-2\n7,1e400\n"
    )
    spec = make_spec("*.csv", {"n": {"type": "bigint"}, "v": {"type": "decimal(18,2)"}})

    load(con, spec, landing)

    assert _rows(con) == [
        (2, Decimal("1.23")),
        (3, Decimal("99999999999999.99")),
        (4, Decimal("15.00")),
        (6, Decimal("1.00")),
    ]
    assert {line for _, line, *_ in rejected(con)} == {2, 6, 8}


def test_a_timestamp_with_an_offset_is_converted_to_utc_and_never_loses_its_offset(con, tmp_path):
    landing = _landing(
        tmp_path,
        "a.csv",
        "n,at,at_tz\n1,2013-01-01T10:00:00+05,2013-01-01T10:00:00+05\n2,2013-01-01 10:00:00,2013-01-01 10:00:00\n"
        "3,2013-01-01 10:00:00.123456789,2013-01-01 10:00:00\n4,2013-01-01 "
        "10:00:00.123456000,2013-01-01T10:00:00-03:30\n",
    )
    spec = make_spec("*.csv", {"n": {"type": "bigint"}, "at": {"type": "timestamp"}, "at_tz": {"type": "timestamptz"}})
    con.execute("SET TimeZone = 'America/New_York'")  # the session's zone must not matter

    load(con, spec, landing)

    rows = con.execute('SELECT n, "at", epoch(at_tz) FROM p.t ORDER BY n').fetchall()
    utc = datetime.UTC
    assert rows == [
        (1, datetime.datetime(2013, 1, 1, 5, 0), datetime.datetime(2013, 1, 1, 5, 0, tzinfo=utc).timestamp()),
        (2, datetime.datetime(2013, 1, 1, 10, 0), datetime.datetime(2013, 1, 1, 10, 0, tzinfo=utc).timestamp()),
        (
            4,
            datetime.datetime(2013, 1, 1, 10, 0, 0, 123456),
            datetime.datetime(2013, 1, 1, 13, 30, tzinfo=utc).timestamp(),
        ),
    ]
    assert [(line, reasons) for _, line, _, reasons, _ in rejected(con)] == [(4, ["at: not a valid timestamp"])]


def test_a_date_column_rejects_a_time_of_day_instead_of_dropping_it(con, tmp_path):
    landing = _landing(tmp_path, "a.csv", "n,d\n1,2024-01-01 10:00:00\n2,2024-01-01T00:00:00\n3,2024-02-30\n")
    spec = make_spec("*.csv", {"n": {"type": "bigint"}, "d": {"type": "date"}})

    load(con, spec, landing)

    assert _rows(con) == [(2, datetime.date(2024, 1, 1))]


def test_json_numbers_land_in_decimal_columns_with_every_digit(con, tmp_path):
    records = [
        '{"n": 1, "v": 99999999999999.99, "big": 12345678901234567890.123456789}',
        '{"n": 2, "v": 0.10, "big": 1}',
    ]
    landing = _landing(tmp_path, "a.ndjson", "\n".join(records) + "\n")
    spec = make_spec(
        "*.ndjson", {"n": {"type": "bigint"}, "v": {"type": "decimal(18,2)"}, "big": {"type": "decimal(38,9)"}}
    )

    load(con, spec, landing)

    assert _rows(con) == [
        (1, Decimal("99999999999999.99"), Decimal("12345678901234567890.123456789")),
        (2, Decimal("0.10"), Decimal("1.000000000")),
    ]


def test_json_array_numbers_keep_every_digit(con, tmp_path):
    landing = _landing(tmp_path, "a.json", '[{"n": 1, "v": 12345678901234567.89}, {"n": 2, "v": 3}]')
    spec = make_spec("*.json", {"n": {"type": "bigint"}, "v": {"type": "decimal(38,2)"}})

    load(con, spec, landing)

    assert _rows(con) == [(1, Decimal("12345678901234567.89")), (2, Decimal("3.00"))]


def test_an_ndjson_file_with_one_malformed_line_loads_the_rest_and_rejects_that_line_with_its_number(con, tmp_path):
    lines = ['{"n": 1}', "", '{"n": 2', '{"n": 3}', "[4]", '{"n": 5}']
    landing = _landing(tmp_path, "a.ndjson", "\n".join(lines) + "\n")
    spec = make_spec("*.ndjson", {"n": {"type": "bigint"}}, [{"name": "not five", "check": "n <> 5"}])

    result = load(con, spec, landing)

    assert _rows(con) == [(1,), (3,)]
    assert [(line, kind, reasons, record) for _, line, kind, reasons, record in rejected(con)] == [
        (3, "parse", ["not valid JSON"], '{"n": 2'),
        (5, "parse", ["a JSON array, not an object"], "[4]"),
        (6, "rule", ["not five"], '{"n":5}'),
    ]
    assert (result.rows_read, result.rows_accepted, result.rows_rejected) == (5, 2, 3)
    assert not result.files_rejected


def test_an_escaped_nul_in_an_ndjson_key_or_value_rejects_its_row_not_the_run(con, tmp_path):
    lines = ['{"n": 1, "s": "ok"}', '{"n": 2, "s": "a\\u0000b"}', '{"n": 3, "s\\u0000x": "other key"}']
    landing = _landing(tmp_path, "a.ndjson", "\n".join(lines) + "\n")
    spec = make_spec("*.ndjson", {"n": {"type": "bigint"}, "s": {}})

    load(con, spec, landing)

    assert _rows(con) == [(1, "ok"), (3, None)]
    assert [(line, reasons) for _, line, _, reasons, _ in rejected(con)] == [(2, ["s: contains a NUL character"])]


def test_one_source_column_mapped_to_two_target_columns_loads_both(con, tmp_path):
    landing = _landing(tmp_path, "a.csv", "id,when\n1,2024-05-01\n2,not a date\n")
    spec = make_spec(
        "*.csv", {"id": {"type": "bigint"}, "day": {"from": "when", "type": "date"}, "day_text": {"from": "when"}}
    )

    load(con, spec, landing)

    assert _rows(con, "id") == [(1, datetime.date(2024, 5, 1), "2024-05-01")]
    [(_, line, _, reasons, record)] = rejected(con)
    assert (line, reasons, json.loads(record)) == (3, ["day: not a valid date"], {"id": "2", "when": "not a date"})


def test_an_expression_may_build_a_column_from_other_columns_of_its_record(con, tmp_path):
    landing = _landing(tmp_path, "a.csv", "id,year,month,day,hhmm\n1,2024,2,29,0930\n2,2023,2,29,1200\n")
    columns = {
        "id": {"type": "bigint"},
        "on": {"expression": "make_date(year::int, month::int, day::int)", "type": "date"},
        "at": {
            "expression": "strptime(year || '-' || month || '-' || day || ' ' || hhmm, '%Y-%m-%d %H%M')",
            "type": "timestamp",
        },
    }
    spec = make_spec("*.csv", columns)

    load(con, spec, landing)

    assert _rows(con, "id") == [(1, datetime.date(2024, 2, 29), datetime.datetime(2024, 2, 29, 9, 30))]
    assert [(line, reasons) for _, line, _, reasons, _ in rejected(con)] == [
        (3, ["on: its expression failed", "at: its expression failed"])
    ]


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["ok", "bad", "ragged"]),
            st.lists(st.sampled_from(["a", " ", ",", '"', "\n", "\r\n", "é"]), max_size=8).map("".join),
        ),
        min_size=1,
        max_size=12,
    ),
    doubled=st.booleans(),
)
def test_a_rejected_row_names_the_physical_line_it_starts_on_when_records_span_lines(con, tmp_path, rows, doubled):
    """Quoted values with line breaks (doubled quotes or backslash escapes): every rejected row,
    by a rule or by the reader, names the line an editor shows it on; the oracle counts the
    lines as the file is written."""
    escape = '"' if doubled else "\\"
    lines, text, expected = 3, "n,note\n-1,first\n", {}  # a first record the reader can size the columns by
    for i, (kind, note) in enumerate(rows):
        quoted = '"' + note.replace('"', escape + '"') + '"'
        record = {"ok": f"{i},{quoted}", "bad": f"x{i},{quoted}", "ragged": f"{i},{quoted},extra"}[kind] + "\n"
        if kind != "ok":
            expected[lines] = kind
        text += record
        lines += record.count("\n")
    landing = tmp_path / f"landing-{uuid.uuid4().hex}"
    landing.mkdir()
    (landing / "a.csv").write_bytes(text.encode())
    spec = make_spec(
        "*.csv",
        {"n": {"type": "bigint"}, "note": {}},
        source={"csv": {"delimiter": ",", "quote": '"', "escape": escape}},
        sync={"allow_empty": True},
    )
    con.execute("DROP TABLE IF EXISTS p.t_rejected")

    load(con, spec, landing)

    got = {line: "bad" if kind == "rule" else "ragged" for _, line, kind, _, _ in rejected(con)}
    assert got == expected


def test_a_json_number_with_an_exponent_is_read_as_written_so_an_integer_column_rejects_it(con, tmp_path):
    landing = _landing(
        tmp_path,
        "a.ndjson",
        '{"n": 1, "v": 1e3, "t": "x"}\n{"n": 2, "v": 7, "t": 1.5E+2}\n{"n": 3, "v": 8, "t": 2.50}\n',
    )
    spec = make_spec("*.ndjson", {"n": {"type": "bigint"}, "v": {"type": "bigint"}, "t": {}})

    load(con, spec, landing)

    assert _rows(con) == [(2, 7, "1.5E+2"), (3, 8, "2.50")]
    assert [(line, reasons) for _, line, _, reasons, _ in rejected(con)] == [(1, ["v: not a valid bigint"])]


def test_a_nul_in_a_json_document_rejects_its_row_but_an_escaped_backslash_before_u0000_does_not(con, tmp_path):
    landing = _landing(
        tmp_path, "a.csv", 'n,doc\n1,"{""a"": ""\\u0000""}"\n2,"{""a"": ""\\\\u0000""}"\n3,"{""\\u0000"": 1}"\n'
    )
    spec = make_spec("*.csv", {"n": {"type": "bigint"}, "doc": {"type": "json"}})

    load(con, spec, landing)

    assert con.execute("SELECT n, doc::VARCHAR FROM p.t").fetchall() == [(2, '{"a": "\\\\u0000"}')]
    assert {line for _, line, *_ in rejected(con)} == {2, 4}


def test_an_interval_with_microseconds_is_rejected_for_a_parquet_table_which_counts_milliseconds(con, tmp_path):
    from etl_platform.connectors.registry import build
    from etl_platform.destinations.files.destination import FileTable
    from etl_platform.destinations.files.reading import read_table
    from etl_platform.destinations.files.storage import FilesLocation
    from etl_platform.destinations.warehouse.tables import TableRef
    from etl_platform.steps import extract, load_target

    source = tmp_path / "src.duckdb"
    with duckdb.connect(str(source)) as src:
        src.execute(
            "CREATE TABLE t AS SELECT * FROM (VALUES (1, INTERVAL '5 hours 50 minutes 46.000801 seconds'), "
            "(2, INTERVAL '1 day 00:00:01.25'), (3, NULL::INTERVAL)) v(n, span)"
        )
    spec = PipelineSpec.model_validate(
        {
            "source": {"connection": "src", "table": "t"},
            "sync": {"allow_empty": True},
            "destination": {"table": "t", "lineage_columns": False},
        }
    )
    lake = tmp_path / "lake"
    destination = FileTable(build("lake", "local", {"path": str(lake)}), "p", "t")
    target = load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected"), destination)

    extract.load_source(
        spec,
        pipeline="p",
        connector=build("src", "duckdb", {"path": str(source)}),
        con=con,
        target=target,
        run_id="run-1",
        log=lambda m: None,
    )

    stored = con.execute(
        f"SELECT n, span FROM {read_table(con, FilesLocation.local(lake), 'p', 't')} ORDER BY n"
    ).fetchall()
    assert stored == [(2, datetime.timedelta(days=1, seconds=1.25)), (3, None)]
    assert [reasons for _, _, _, reasons, _ in rejected(con)] == [
        ["span: a Parquet file holds an interval to the millisecond, this one has microseconds"]
    ]


def test_ndjson_lines_only_duckdb_would_parse_are_rejected_alone_and_the_rest_keep_their_numbers(con, tmp_path):
    landing = _landing(
        tmp_path,
        "a.ndjson",
        '{"n": 1, "v": 1.50}\n{"n": 2, "v": "x"} trailing\n{"n": 3, "v": NaN}\n'
        '{"n": 4, "v": 1,}\n{"n": 5, "v": {"a": 1.10, "b": [2.50, 1e2]}, "d": [1.0]}\n',
    )
    spec = make_spec("*.ndjson", {"n": {"type": "bigint"}, "v": {}, "d": {"type": "json"}})

    load(con, spec, landing)

    assert con.execute("SELECT n, v, d::VARCHAR FROM p.t ORDER BY n").fetchall() == [
        (1, "1.50", None),
        (5, '{"a":1.10,"b":[2.50,1e2]}', "[1.0]"),
    ]
    assert {(line, kind) for _, line, kind, _, _ in rejected(con)} == {(2, "parse"), (3, "parse"), (4, "parse")}


def test_json_text_duckdb_would_parse_but_json_does_not_rejects_its_row(con, tmp_path):
    landing = _landing(
        tmp_path, "a.csv", 'n,doc\n1,[nan]\n2,[1]\n3,"{""a"": 1,}"\n4,[inf]\n5,"[1,,2]"\n6,"{""nan"": ""inf, ]""}"\n'
    )
    spec = make_spec("*.csv", {"n": {"type": "bigint"}, "doc": {"type": "json"}})

    load(con, spec, landing)

    assert con.execute("SELECT n, doc::VARCHAR FROM p.t ORDER BY n").fetchall() == [
        (2, "[1]"),
        (6, '{"nan": "inf, ]"}'),
    ]


def test_an_offset_out_of_range_and_nanoseconds_in_a_format_reject_their_rows(con, tmp_path):
    landing = _landing(
        tmp_path,
        "a.csv",
        "n|at|fine\n1|2024-01-01 10:00:00+99|2024-01-01 10:00:00.123456789\n"
        "2|2024-01-01 10:00:00+05:99|2024-01-01 10:00:00.123456000\n"
        "3|2024-01-01 10:00:00-23:59|2024-01-01 10:00:00.999999000\n"
        "4|2024-01-01 10:00:00Z|2024-01-01 10:00:00.999999999\n",
    )
    spec = make_spec(
        "*.csv",
        {
            "n": {"type": "bigint"},
            "at": {"type": "timestamp"},
            "fine": {"type": "timestamp", "format": "%Y-%m-%d %H:%M:%S.%n"},
        },
        source={"csv": {"delimiter": "|"}},
    )

    load(con, spec, landing)

    assert _rows(con) == [(3, datetime.datetime(2024, 1, 2, 9, 59), datetime.datetime(2024, 1, 1, 10, 0, 0, 999999))]
    reasons = {line: sorted(r) for _, line, _, r, _ in rejected(con)}
    in_format = "fine: not a valid timestamp in format %Y-%m-%d %H:%M:%S.%n"
    assert reasons == {2: ["at: not a valid timestamp", in_format], 3: ["at: not a valid timestamp"], 5: [in_format]}


def test_a_date_format_with_a_time_zone_is_refused_when_the_pipeline_loads():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="reads a time zone"):
        make_spec("*.csv", {"d": {"type": "date", "format": "%Y-%m-%d %H:%M%z"}})


def test_quoted_fields_escaped_two_ways_reject_the_file_instead_of_keeping_every_quote_mark(con, tmp_path):
    mixed = "n,v\n" + "".join(f'{i},"name {i} ""nick"""\n' for i in range(1, 30)) + '30,"O\\"Brien"\n'
    landing = _landing(tmp_path, "a.csv", mixed)
    spec = make_spec("*.csv", {"n": {"type": "bigint"}, "v": {}}, sync={"allow_empty": True})

    result = load(con, spec, landing)

    assert con.execute("SELECT count(*) FROM p.t").fetchall() == [(0,)]
    [why] = [f.rejected_whole for f in result.files_rejected]
    assert "quoted, but not all the same way" in why and "source.csv.escape" in why


def test_a_quote_that_is_part_of_an_unquoted_value_is_kept_as_text(con, tmp_path):
    landing = _landing(tmp_path, "a.csv", 'n,v\n1,12" pipe\n2,"a ""b"""\n')
    spec = make_spec("*.csv", {"n": {"type": "bigint"}, "v": {}})

    load(con, spec, landing)

    assert _rows(con) == [(1, '12" pipe'), (2, 'a "b"')]
