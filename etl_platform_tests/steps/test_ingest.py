"""The data path without Dagster: mapping, rules, rejected rows, sync modes."""

import json
from pathlib import Path

import duckdb
import pytest

from etl_platform.demo import data as demo
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse.tables import SchemaMismatch, TableRef
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import ingest, load_result, load_target

CAMPAIGN_COLUMNS = {
    "date": {"from": "Day", "type": "date"},
    "campaign": {"from": "Campaign name"},
    "channel": {"from": "Channel"},
    "spend": {"from": "Amount spent (USD)", "type": "decimal(18,2)"},
    "clicks": {"from": "Link clicks", "type": "bigint"},
    "conversions": {"from": "Results", "type": "bigint"},
}
CAMPAIGN_RULES = [
    {"not_null": ["date", "campaign", "channel"]},
    {"name": "spend is negative", "check": "spend >= 0"},
    {"name": "more conversions than clicks", "check": "clicks >= conversions"},
    {"accepted_values": {"column": "channel", "values": demo.CHANNELS}},
]


def make_spec(files: str, columns: dict, rules: list | None = None, **extra) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "source": {"files": files, "columns": columns, **extra.pop("source", {})},
            "rules": rules or [],
            "destination": {"table": "t"},
            **extra,
        }
    )


def load(con, spec: PipelineSpec, landing: Path, run_id: str = "run-1") -> load_result.LoadResult:
    files = sorted(p for p in landing.glob(spec.source.files) if p.is_file())
    target = load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected"))
    return ingest.run(
        con,
        spec,
        pipeline="p",
        files=files,
        relative=lambda p: p.relative_to(landing).as_posix(),
        target=target,
        run_id=run_id,
        log=lambda msg: None,
        progress_interval=60,
    )


@pytest.fixture
def con(tmp_path: Path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield connection
    connection.close()


def rejected(con, run_id: str | None = None) -> list[tuple]:
    where = "WHERE run_id = ?" if run_id else ""
    return con.execute(
        f"SELECT source_file, source_line, kind, reasons, record FROM p.t_rejected {where} ORDER BY source_file, "
        "source_line",
        [run_id] if run_id else [],
    ).fetchall()


def test_campaigns_every_row_is_loaded_or_rejected_with_a_reason(con, tmp_path):
    landing = tmp_path / "landing"
    demo.write_campaigns(landing / "c", rows=5_000, files=2)
    spec = make_spec("c/*.csv", CAMPAIGN_COLUMNS, CAMPAIGN_RULES)

    result = load(con, spec, landing)

    assert result.rows_read == 5_000
    assert result.rows_accepted + result.rows_rejected == result.rows_read  # Q
    assert con.execute("SELECT count(*) FROM p.t").fetchone()[0] == result.rows_accepted
    rows = rejected(con)
    assert len(rows) == result.rows_rejected > 0
    assert all(reasons and file and line for file, line, _, reasons, _ in rows)
    # Every kind of bad row the generator plants is caught, with a reason a person can read.
    assert set(result.rejected_by_reason) >= {
        "spend is negative",
        "more conversions than clicks",
        "channel not in [Search, Social, Display, Video, Email]",
        "date: not a valid date",
        "clicks: not a valid bigint",
    }
    # The 'Delivery status' column is not mapped: nothing is rejected because of it.
    assert not any("Delivery" in r for r in result.rejected_by_reason)


def test_rejected_rows_point_at_the_right_line(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text(
        "id,amount,day\n"
        "1,10,2024-01-01\n"  # line 2: ok
        "2,-5,2024-01-02\n"  # line 3: rule
        "3,abc,2024-01-03\n"  # line 4: not a number (reader)
        "4,7,2024-02-30\n"  # line 5: impossible date (reader)
        "5,1,2024-01-05,extra\n"  # line 6: too many columns
        "6,-1,2024-01-06\n"  # line 7: rule, after three reader rejects
        "7,3,2024-01-07\n"  # line 8: ok
    )
    spec = make_spec(
        "*.csv",
        {"id": {"type": "bigint"}, "amount": {"type": "bigint"}, "day": {"type": "date"}},
        [{"name": "negative", "check": "amount >= 0"}],
    )

    result = load(con, spec, landing)

    lines = {line: (kind, reasons) for _, line, kind, reasons, _ in rejected(con)}
    assert lines == {
        3: ("rule", ["negative"]),
        4: ("rule", ["amount: not a valid bigint"]),
        5: ("rule", ["day: not a valid date"]),
        6: ("parse", [lines[6][1][0]]),
        7: ("rule", ["negative"]),
    }
    assert "too many columns" in lines[6][1][0]
    assert sorted(r[0] for r in con.execute("SELECT id FROM p.t").fetchall()) == [1, 7]
    assert (result.rows_read, result.rows_accepted, result.rows_rejected) == (7, 2, 5)


def test_rejected_record_keeps_what_the_file_said(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id,amount\n1,-5\n2,twelve\n")
    spec = make_spec("*.csv", {"id": {"type": "bigint"}, "amount": {"type": "bigint"}}, [{"check": "amount >= 0"}])
    with pytest.raises(
        load_result.NothingToReplace
    ):  # every row rejected: the table is not replaced, the rows are recorded
        load(con, spec, landing)
    records = {line: record for _, line, _, _, record in rejected(con)}
    assert json.loads(records[2]) == {"id": 1, "amount": -5}
    assert json.loads(records[3]) == {"id": "2", "amount": "twelve"}


def test_a_file_without_a_mapped_column_is_rejected_whole_and_the_others_load(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "good.csv").write_text("id,name\n1,a\n2,b\n")
    (landing / "other_export.csv").write_text("identifier,label\n3,c\n")
    (landing / "empty.csv").write_text("")
    spec = make_spec("*.csv", {"id": {"type": "bigint"}, "name": {}})

    result = load(con, spec, landing)

    assert con.execute("SELECT count(*) FROM p.t").fetchone()[0] == 2
    whole = {f.file: f.rejected_whole for f in result.files_rejected}
    assert "missing mapped column(s) id, name" in whole["other_export.csv"]
    assert whole["empty.csv"] == "file is empty"
    assert {(r[0], r[2]) for r in rejected(con)} == {("other_export.csv", "file"), ("empty.csv", "file")}


def test_on_bad_file_fail_keeps_the_previous_table(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id\n1\n2\n")
    spec = make_spec("*.csv", {"id": {"type": "bigint"}}, source={"on_bad_file": "fail"})
    load(con, spec, landing)
    (landing / "b.csv").write_text("wrong\n3\n")

    with pytest.raises(load_result.LoadFailed, match=r"b\.csv: missing mapped column\(s\) id"):
        load(con, spec, landing, run_id="run-2")

    assert con.execute("SELECT count(*) FROM p.t").fetchone()[0] == 2


def test_limits_reject_a_file_whole(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "small.csv").write_text("id\n1\n2\n")
    (landing / "big.csv").write_text("id\n" + "".join(f"{i}\n" for i in range(100)))
    spec = make_spec("*.csv", {"id": {"type": "bigint"}}, source={"limits": {"max_rows": 50}})
    result = load(con, spec, landing)
    assert {f.file: f.rejected_whole for f in result.files_rejected} == {
        "big.csv": "file has more than 50 rows, the limit (limits.max_rows); reading stopped there"
    }
    assert con.execute("SELECT count(*) FROM p.t").fetchone()[0] == 2


def test_parquet_and_ndjson_cast_in_sql_and_reject_what_does_not_convert(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.ndjson").write_text(
        '{"id": 1, "at": "2024-01-01T10:00:00"}\n{"id": "x", "at": "soon"}\n{"id": 3, "at": null}\n'
    )
    duckdb.execute(f"COPY (SELECT 10 AS id, '2024-03-01 00:00:00' AS at) TO '{landing / 'b.parquet'}' (FORMAT parquet)")
    columns = {"id": {"type": "bigint"}, "at": {"type": "timestamp"}}

    ndjson = load(con, make_spec("*.ndjson", columns), landing)
    assert (ndjson.rows_read, ndjson.rows_accepted) == (3, 2)
    [(file, line, kind, reasons, record)] = rejected(con)
    assert (file, line, kind) == ("a.ndjson", 2, "rule")
    assert reasons == ["id: not a valid bigint", "at: not a valid timestamp"]
    assert json.loads(record) == {"id": "x", "at": "soon"}

    parquet = load(con, make_spec("*.parquet", columns), landing, run_id="run-2")
    assert (parquet.rows_read, parquet.rows_accepted) == (1, 1)


def test_column_format_and_expression(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text('day,amount\n01/31/2024,"1,234.50"\n13/01/2024,7\n')
    spec = make_spec(
        "*.csv",
        {
            "day": {"type": "date", "format": "%m/%d/%Y"},
            "amount": {"type": "decimal(10,2)", "expression": "replace(value, ',', '')"},
        },
    )
    result = load(con, spec, landing)
    assert con.execute("SELECT day::VARCHAR, amount::VARCHAR FROM p.t").fetchall() == [("2024-01-31", "1234.50")]
    assert result.rejected_by_reason == {"day: not a valid date in format %m/%d/%Y": 1}


def test_hostile_header_names_cannot_inject_sql(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    hostile = 'x"); DROP TABLE p.t; --'
    (landing / "a.csv").write_text(f'"{hostile.replace(chr(34), chr(34) * 2)}",plain\n1,a\n')
    spec = make_spec("*.csv", {"value": {"from": hostile, "type": "bigint"}, "plain": {}})
    load(con, spec, landing)
    load(con, spec, landing, run_id="run-2")
    assert con.execute("SELECT value, plain FROM p.t").fetchall() == [(1, "a")]


def _orders(path: Path, rows: list[tuple]) -> None:
    path.write_text("id,updated,status\n" + "".join(f"{i},{u},{s}\n" for i, u, s in rows))


ORDER_COLUMNS = {"id": {"type": "bigint"}, "updated": {"type": "bigint"}, "status": {}}


def test_merge_keeps_the_latest_row_per_key_however_often_it_runs(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    _orders(landing / "1.csv", [(1, 1, "placed"), (2, 1, "placed")])
    _orders(landing / "2.csv", [(2, 3, "shipped"), (3, 2, "placed"), (2, 2, "packed")])
    spec = make_spec("*.csv", ORDER_COLUMNS, sync={"mode": "merge", "primary_key": ["id"], "cursor": "updated"})
    for run in range(3):
        load(con, spec, landing, run_id=f"run-{run}")
    rows = con.execute("SELECT id, updated, status FROM p.t ORDER BY id").fetchall()
    assert rows == [(1, 1, "placed"), (2, 3, "shipped"), (3, 2, "placed")]  # NODUP, latest by cursor


def test_incremental_saves_the_cursor_with_the_rows_and_keeps_late_rows(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    spec = make_spec("*.csv", ORDER_COLUMNS, sync={"mode": "incremental", "cursor": "updated"})
    _orders(landing / "1.csv", [(1, 1, "a"), (2, 2, "b")])
    first = load(con, spec, landing, run_id="run-1")
    assert (first.committed.cursor_before, first.committed.cursor_after) == (None, "2")

    # The next export repeats the boundary row, adds a late row with the same cursor, and new rows.
    _orders(landing / "1.csv", [(1, 1, "a"), (2, 2, "b"), (4, 2, "late"), (5, 3, "new")])
    second = load(con, spec, landing, run_id="run-2")
    assert second.committed.cursor_before == "2" and second.committed.cursor_after == "3"
    assert second.committed.rows_before_cursor == 1
    rows = con.execute("SELECT id, status FROM p.t ORDER BY id").fetchall()
    assert rows == [(1, "a"), (2, "b"), (4, "late"), (5, "new")]  # nothing lost, nothing twice

    load(con, spec, landing, run_id="run-3")
    assert con.execute("SELECT count(*) FROM p.t").fetchone()[0] == 4
    assert con.execute("SELECT cursor_value FROM _etl.state WHERE pipeline = 'p'").fetchone()[0] == "3"


def test_append_refuses_a_changed_schema_and_changes_nothing(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    _orders(landing / "1.csv", [(1, 1, "a")])
    load(con, make_spec("*.csv", ORDER_COLUMNS, sync={"mode": "append"}), landing)
    wider = {**ORDER_COLUMNS, "updated": {"type": "varchar"}}
    with pytest.raises(SchemaMismatch, match=r"changed types: updated BIGINT -> VARCHAR"):
        load(con, make_spec("*.csv", wider, sync={"mode": "append"}), landing, run_id="run-2")
    assert con.execute("SELECT count(*) FROM p.t").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM p.t_rejected WHERE run_id = 'run-2'").fetchone()[0] == 0


def test_a_failure_after_staging_rolls_back_everything(con, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id\n1\n-1\n")
    spec = make_spec("*.csv", {"id": {"type": "bigint"}}, [{"check": "id > 0"}])
    load(con, spec, landing)
    (landing / "b.csv").write_text("id\n2\n3\n-4\n")

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(warehouse_state, "commit", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        load(con, spec, landing, run_id="run-2")
    # ATOM: the old table, no half-written rejected rows, no stage table left behind.
    assert con.execute("SELECT id FROM p.t").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM p.t_rejected WHERE run_id = 'run-2'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__stage%'").fetchone()[0] == 0


def test_a_large_first_incremental_load_saves_its_cursor(tmp_path):
    """200,000 rows (more than one DuckDB row group) in the first load: the cursor is the highest one."""
    from etl_platform.destinations.warehouse import state as warehouse_state
    from etl_platform.spec.pipeline import SyncSpec

    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE SCHEMA s")
        con.execute("CREATE TABLE s.stage AS SELECT range AS id, range * 10 AS seq FROM range(200000)")
        con.execute("BEGIN")
        plan = warehouse_state.Plan(SyncSpec(mode="incremental", cursor="seq", primary_key=["id"]), load_id="r")
        committed = warehouse_state.commit(
            con, TableRef("s", "stage"), TableRef("s", "t"), plan, pipeline="p", run_id="r", data_columns=["id", "seq"]
        )
        con.execute("COMMIT")
        assert committed.cursor_after == "1999990"
        assert warehouse_state.saved_cursor(con, "p") == "1999990"


def test_looking_up_a_missing_table_inside_a_transaction_leaves_it_usable(con):
    """table_exists runs inside a load's transaction (before creating the target): a missing
    table, hostile names included, must not abort what the transaction has done so far."""
    from etl_platform.destinations.warehouse.tables import columns_of, table_exists

    con.execute('CREATE SCHEMA "we.ird"')
    con.execute('CREATE TABLE "we.ird"."t""x y" (a INTEGER, "b c" DECIMAL(12,2))')
    con.execute("BEGIN TRANSACTION")
    con.execute('INSERT INTO "we.ird"."t""x y" VALUES (1, 2.5)')
    assert not table_exists(con, TableRef("we.ird", "missing"))
    assert not table_exists(con, TableRef("no_such_schema", "t"))
    assert table_exists(con, TableRef("we.ird", 't"x y'))
    assert columns_of(con, TableRef("we.ird", 't"x y')) == [("a", "INTEGER"), ("b c", "DECIMAL(12,2)")]
    con.execute("COMMIT")
    assert con.execute('SELECT * FROM "we.ird"."t""x y"').fetchall() == [(1, 2.5)]
