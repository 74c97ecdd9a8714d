"""Sync modes hold EXACT, NODUP, WM and NOWIPE: no row lost, doubled or kept without a record.

Loads run through the load step itself (``steps.extract.load_source``), without Dagster, on real
files, a DuckDB source database and a JSON API on loopback.
"""

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from etl_platform.connectors.registry import build
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.destinations.warehouse.destination import WarehouseTable
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.intake import fingerprints
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import extract, load_result, load_target

TABLE, REJECTED = TableRef("p", "t"), TableRef("p", "t_rejected")


@pytest.fixture
def con(tmp_path: Path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def run(con, spec: dict, connector, run_id: str, destination=None) -> load_result.LoadResult:
    parsed = PipelineSpec.model_validate({"destination": {"table": "t"}, **spec})
    target = load_target.Target(TABLE, REJECTED, destination)
    return extract.load_source(
        parsed, pipeline="p", connector=connector, con=con, target=target, run_id=run_id, log=lambda _: None
    )


def rows(con, columns: str = "*", order: str = "1") -> list[tuple]:
    return con.execute(f"SELECT {columns} FROM p.t ORDER BY {order}").fetchall()


def folder(tmp_path: Path):
    path = tmp_path / "files"
    path.mkdir(exist_ok=True)
    return path, build("files", "local", {"path": str(path)})


def csv_spec(glob: str = "*.csv", **sync) -> dict:
    return {
        "source": {
            "connection": "files",
            "files": glob,
            "columns": {"id": {"type": "bigint"}, "ts": {"type": "timestamp"}, "v": {}},
        },
        "sync": sync or {"mode": "replace"},
    }


# NOWIPE


@pytest.mark.parametrize(
    "name, content",
    [
        ("a.csv.gz", gzip.compress(b"id,ts,v\n1,2024-01-01,a\n" * 1000)[:60]),
        ("a.csv", b""),
        ("a.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"),
    ],
    ids=["a truncated gzip", "a 0-byte export", "a PDF named .csv"],
)
def test_a_replace_whose_every_file_is_rejected_keeps_the_old_table_and_fails(con, tmp_path, name, content):
    files, connector = folder(tmp_path)
    (files / "good.csv").write_text("id,ts,v\n1,2024-01-01,a\n2,2024-01-02,b\n")
    run(con, csv_spec(), connector, "run-1")
    (files / "good.csv").unlink()
    (files / name).write_bytes(content)

    with pytest.raises(load_result.NothingToReplace, match="rejected whole; p.t was left as it was") as refused:
        run(
            con,
            {**csv_spec(), "source": {**csv_spec()["source"], "files": "*.csv*", "format": "csv"}},
            connector,
            "run-2",
        )

    assert rows(con, "id") == [(1,), (2,)]
    assert refused.value.result.refused.startswith("all 1 file(s) were rejected whole")
    assert con.execute("SELECT source_file, kind FROM p.t_rejected WHERE run_id = 'run-2'").fetchall() == [
        (name, "file")
    ]


def test_a_replace_of_a_truncated_parquet_file_keeps_the_old_table(con, tmp_path):
    files, connector = folder(tmp_path)
    con.execute(
        f"COPY (SELECT range AS id, TIMESTAMP '2024-01-01' AS ts, 'x' AS v FROM range(3)) TO '{files / 'a.parquet'}'"
    )
    spec = {**csv_spec("*.parquet"), "source": {**csv_spec()["source"], "files": "*.parquet"}}
    run(con, spec, connector, "run-1")
    data = (files / "a.parquet").read_bytes()
    (files / "a.parquet").write_bytes(data[: len(data) // 2])

    with pytest.raises(load_result.NothingToReplace):
        run(con, spec, connector, "run-2")
    assert rows(con, "id") == [(0,), (1,), (2,)]


def test_a_replace_where_every_row_is_rejected_keeps_the_old_table_unless_the_spec_allows_it(con, tmp_path):
    files, connector = folder(tmp_path)
    (files / "a.csv").write_text("id,ts,v\n1,2024-01-01,a\n")
    run(con, csv_spec(), connector, "run-1")
    (files / "a.csv").write_text("id,ts,v\nx,2024-01-01,a\n")

    with pytest.raises(load_result.NothingToReplace, match="every one of the 1 row"):
        run(con, csv_spec(), connector, "run-2")
    assert rows(con, "id") == [(1,)]

    run(con, csv_spec(mode="replace", allow_empty=True), connector, "run-3")
    assert rows(con, "id") == []


# Superseded rows of a merge


def test_a_merge_whose_key_repeats_in_one_load_records_the_superseded_rows_with_the_line_that_won(con, tmp_path):
    files, connector = folder(tmp_path)
    (files / "a.csv").write_text("id,ts,v\n1,2024-01-02,newest\n2,2024-01-01,only\n1,2024-01-01,older\n")
    (files / "b.csv").write_text("id,ts,v\n1,2024-01-01,same time in a later file\n")
    spec = csv_spec(mode="merge", primary_key=["id"], cursor="ts")

    result = run(con, spec, connector, "run-1")

    assert rows(con, "id, v") == [(1, "newest"), (2, "only")]
    assert (result.rows_read, result.rows_rejected, result.rows_superseded, result.committed.rows_written) == (
        4,
        0,
        2,
        2,
    )
    superseded = con.execute(
        "SELECT source_file, source_line, reasons FROM p.t_rejected WHERE kind = 'superseded' ORDER BY 1, 2"
    ).fetchall()
    assert superseded == [
        ("a.csv", 4, ["superseded by a.csv line 2 (the same key)"]),
        ("b.csv", 2, ["superseded by a.csv line 2 (the same key)"]),
    ]


# Full refresh and rewind


def source_db(tmp_path: Path, statements: list[str]):
    path = tmp_path / "source.duckdb"
    with duckdb.connect(str(path)) as db:
        for statement in statements:
            db.execute(statement)
    return build("src", "duckdb", {"path": str(path)})


def events_spec(**sync) -> dict:
    return {
        "source": {"connection": "src", "table": "events"},
        "sync": {"mode": "incremental", "cursor": "ts", **sync},
        "destination": {"table": "t", "lineage_columns": False},
    }


def test_state_reset_then_a_load_is_a_full_refresh_not_a_doubling(con, tmp_path):
    src = source_db(tmp_path, ["CREATE TABLE events AS SELECT range AS n, range AS ts FROM range(10)"])
    run(con, events_spec(), src, "run-1")
    WarehouseTable(TABLE).reset_state(con, "p", None)

    result = run(con, events_spec(), src, "run-2")

    assert rows(con, "n") == [(n,) for n in range(10)]
    assert (result.committed.rows_written, result.committed.rows_deleted) == (10, 10)
    assert warehouse_state.read_state(con, "p") == warehouse_state.State("9")


def test_a_rewound_keyless_incremental_load_replaces_the_rows_from_the_bound_on(con, tmp_path):
    src = source_db(tmp_path, ["CREATE TABLE events AS SELECT range AS n, range AS ts FROM range(10)"])
    run(con, events_spec(), src, "run-1")
    with duckdb.connect(str(tmp_path / "source.duckdb")) as db:  # the source corrects rows 7 and 8, and adds 10
        db.execute("UPDATE events SET n = n + 100 WHERE ts IN (7, 8); INSERT INTO events VALUES (10, 10)")
    WarehouseTable(TABLE).reset_state(con, "p", "6")

    result = run(con, events_spec(), src, "run-2")

    assert rows(con, "ts, n") == [(a, a) for a in range(7)] + [(7, 107), (8, 108), (9, 9), (10, 10)]
    assert (result.committed.rows_deleted, result.committed.rows_written) == (4, 5)
    assert warehouse_state.read_state(con, "p").cursor == "10"


def test_a_rewind_to_where_a_run_started_uses_the_state_history(con, tmp_path):
    src = source_db(tmp_path, ["CREATE TABLE events AS SELECT range AS n, range AS ts FROM range(5)"])
    run(con, events_spec(), src, "run-1")
    with duckdb.connect(str(tmp_path / "source.duckdb")) as db:
        db.execute("INSERT INTO events SELECT range, range FROM range(5, 8)")
    run(con, events_spec(), src, "run-2")

    entries = WarehouseTable(TABLE).history(con, "p")
    assert [(e.action, e.run_id, e.cursor_before, e.cursor_after, e.rows_written) for e in entries] == [
        ("load", "run-2", "4", "7", 3),
        ("load", "run-1", None, "4", 5),
    ]
    WarehouseTable(TABLE).reset_state(con, "p", entries[0].cursor_before)  # where run-2 started
    run(con, events_spec(), src, "run-3")
    assert rows(con, "n") == [(n,) for n in range(8)]


def test_a_reset_file_pipeline_in_append_mode_reads_its_files_again_without_doubling(con, tmp_path):
    files, connector = folder(tmp_path)
    (files / "a.csv").write_text("id,ts,v\n1,2024-01-01,a\n")
    (files / "b.csv").write_text("id,ts,v\n2,2024-01-02,b\n")
    run(con, csv_spec(mode="append"), connector, "run-1")
    WarehouseTable(TABLE).reset_state(con, "p", None)
    fingerprints.forget(con, "p")

    run(con, csv_spec(mode="append"), connector, "run-2")

    assert rows(con, "id") == [(1,), (2,)]


# Lookback: rows that appear below the saved cursor


def test_a_row_committed_late_below_the_cursor_is_loaded_once_with_a_lookback(con, tmp_path):
    src = source_db(
        tmp_path,
        [
            "CREATE TABLE events (n BIGINT, ts TIMESTAMP)",
            "INSERT INTO events VALUES (1, '2024-01-01 10:00'), (3, '2024-01-01 10:10')",
        ],
    )
    spec = events_spec(lookback="15 minutes")
    run(con, spec, src, "run-1")
    with duckdb.connect(str(tmp_path / "source.duckdb")) as db:  # a transaction that started at 10:05 commits now
        db.execute("INSERT INTO events VALUES (2, '2024-01-01 10:05'), (4, '2024-01-01 10:20')")

    result = run(con, spec, src, "run-2")

    assert rows(con, "n") == [(1,), (2,), (3,), (4,)]
    assert (result.committed.rows_already_loaded, result.committed.rows_written) == (2, 2)
    assert warehouse_state.read_state(con, "p").cursor == "2024-01-01 10:20:00"
    again = run(con, spec, src, "run-3")  # a rerun re-reads the window and adds nothing
    assert again.committed.rows_written == 0 and len(rows(con)) == 4


def test_without_a_lookback_a_late_row_below_the_cursor_is_not_read(con, tmp_path):
    """Why a busy OLTP source needs a lookback: the inclusive bound alone cannot see a row committed
    below it after a load (the README says so)."""
    src = source_db(
        tmp_path,
        [
            "CREATE TABLE events (n BIGINT, ts TIMESTAMP)",
            "INSERT INTO events VALUES (1, '2024-01-01 10:00'), (3, '2024-01-01 10:10')",
        ],
    )
    run(con, events_spec(), src, "run-1")
    with duckdb.connect(str(tmp_path / "source.duckdb")) as db:
        db.execute("INSERT INTO events VALUES (2, '2024-01-01 10:05')")
    run(con, events_spec(), src, "run-2")
    assert rows(con, "n") == [(1,), (3,)]


def test_identical_rows_in_the_source_are_kept_as_a_multiset_across_reruns(con, tmp_path):
    src = source_db(tmp_path, ["CREATE TABLE events (n BIGINT, ts BIGINT)", "INSERT INTO events VALUES (1, 5), (1, 5)"])
    spec = events_spec(lookback=10)
    run(con, spec, src, "run-1")
    run(con, spec, src, "run-2")
    assert rows(con) == [(1, 5), (1, 5)]
    with duckdb.connect(str(tmp_path / "source.duckdb")) as db:  # a third equal row is a new row
        db.execute("INSERT INTO events VALUES (1, 5)")
    run(con, spec, src, "run-3")
    assert rows(con) == [(1, 5), (1, 5), (1, 5)]


# The ledger vouches only for rows the table holds


def test_after_replace_loads_a_switch_to_merge_reads_the_files_whose_rows_were_replaced(con, tmp_path):
    files, connector = folder(tmp_path)
    (files / "a.csv").write_text("id,ts,v\n1,2024-01-01,a\n")
    run(con, csv_spec(), connector, "run-1")
    (files / "a.csv").rename(files / "old.csv.bak")
    (files / "b.csv").write_text("id,ts,v\n2,2024-01-02,b\n")
    run(con, csv_spec(), connector, "run-2")  # the table now holds b only
    (files / "old.csv.bak").rename(files / "a.csv")

    result = run(con, csv_spec(mode="merge", primary_key=["id"]), connector, "run-3")

    assert rows(con, "id") == [(1,), (2,)]
    assert [f.file for f in result.files_duplicate] == ["b.csv"]


# A cursor made by a format or an expression


def test_a_cursor_on_a_formatted_column_reads_new_rows(con, tmp_path):
    src = source_db(
        tmp_path,
        [
            "CREATE TABLE events (n BIGINT, day VARCHAR)",
            "INSERT INTO events VALUES (1, '31/12/2023'), (2, '01/01/2024')",
        ],
    )
    spec = {
        "source": {
            "connection": "src",
            "table": "events",
            "columns": {"n": {"type": "bigint"}, "day": {"type": "date", "format": "%d/%m/%Y"}},
        },
        "sync": {"mode": "incremental", "cursor": "day"},
        "destination": {"table": "t", "lineage_columns": False},
    }
    run(con, spec, src, "run-1")
    with duckdb.connect(str(tmp_path / "source.duckdb")) as db:  # '02/01/2024' < '31/12/2023' as text
        db.execute("INSERT INTO events VALUES (3, '02/01/2024')")

    result = run(con, spec, src, "run-2")

    assert rows(con, "n") == [(1,), (2,), (3,)]
    assert result.committed.cursor_after == "2024-01-02"


# An API that answers an empty page


class Pages(BaseHTTPRequestHandler):
    body = "[]"  # the JSON text the API answers, numbers exactly as written

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = type(self).body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.mark.parametrize(
    "sync", [{"mode": "append"}, {"mode": "incremental", "cursor": "ts"}, {"mode": "merge", "primary_key": ["id"]}]
)
@pytest.mark.parametrize("mapped", [False, True], ids=["every field", "mapped fields"])
def test_an_api_that_answers_an_empty_page_is_a_quiet_tick(con, api, sync, mapped):
    connector = build("api", "rest", {"base_url": f"http://127.0.0.1:{api.server_port}"})
    source = {"connection": "api", "endpoint": {"path": "/events"}}
    if mapped:
        source["columns"] = {"id": {"type": "bigint"}, "ts": {"type": "bigint"}, "amount": {"type": "decimal(18,2)"}}
    spec = {"source": source, "sync": sync}
    Pages.body = '[{"id": 1, "ts": 5, "amount": 99999999999999.99}]'
    run(con, spec, connector, "run-1")
    Pages.body = "[]"

    quiet = run(con, spec, connector, "run-2")

    assert (quiet.rows_read, quiet.committed.rows_written) == (0, 0)
    assert [c for c, _ in warehouse_tables.columns_of(con, TABLE)] == ["id", "ts", "amount", "_source_file", "_load_id"]
    assert rows(con, "id, ts, amount::VARCHAR" if mapped else "id, ts") == [
        (1, 5, "99999999999999.99") if mapped else (1, 5)
    ]
