"""PostgreSQL as a destination, against the real server: sync modes, cursor, atomicity, names, secrets."""

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import quote as url_quote

import duckdb
import psycopg2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg2 import sql
from psycopg2.extensions import make_dsn

from etl_platform.destinations.postgres import commit as postgres
from etl_platform.destinations.postgres import state as postgres_state
from etl_platform.destinations.postgres import transaction as postgres_transaction
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.destinations.warehouse.tables import SchemaMismatch, TableRef
from etl_platform.spec.pipeline import SyncSpec
from etl_platform.sql import quote
from etl_platform_tests.conftest import PROJECT_ROOT, examples

COLUMNS = "id BIGINT, updated_at TIMESTAMP, name VARCHAR, amount DECIMAL(18,2)"
DATA_COLUMNS = ["id", "updated_at", "name", "amount"]
STAGE = TableRef("p", "stage")
SELECT_ROWS = "SELECT id, updated_at, name, amount FROM dest.t ORDER BY id, updated_at"


def day(n: int) -> datetime:
    return datetime(2024, 1, 1) + timedelta(days=n - 1)


def row(id_: int, on: int, name: str, amount: str = "1.00") -> tuple:
    return (id_, day(on), name, Decimal(amount))


@pytest.fixture
def dsn(postgres_database) -> str:
    return make_dsn(**{k: v for k, v in postgres_database.items() if v != ""})


@pytest.fixture
def duck():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA p")
    yield con
    con.close()


def stage(duck, rows: list[tuple], columns: str = COLUMNS) -> None:
    duck.execute(f"CREATE OR REPLACE TABLE {STAGE.sql} ({columns})")
    if rows:
        duck.executemany(f"INSERT INTO {STAGE.sql} VALUES ({', '.join('?' * len(rows[0]))})", rows)


def commit(
    duck, dsn, mode: str, rows: list[tuple] | None = None, *, policy="freeze", run_id="run-1", **sync
) -> warehouse_tables.Committed:
    if rows is not None:
        stage(duck, rows)
    return postgres.commit(
        duck,
        STAGE,
        dsn=dsn,
        schema="dest",
        table="t",
        sync=SyncSpec(mode=mode, **sync),
        pipeline="p",
        run_id=run_id,
        data_columns=DATA_COLUMNS,
        schema_policy=policy,
    )


def query(dsn: str, statement, params: list | None = None) -> list[tuple]:
    with psycopg2.connect(dsn) as pg, pg.cursor() as cur:
        cur.execute(statement, params)
        rows = cur.fetchall() if cur.description else []
    pg.close()
    return rows


def execute(dsn: str, *statements) -> None:
    pg = psycopg2.connect(dsn)
    pg.autocommit = True
    with pg.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    pg.close()


def tables(dsn: str, schema: str = "dest") -> set[str]:
    return {name for (name,) in query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])}


def state(dsn: str) -> list[tuple]:
    return query(dsn, "SELECT pipeline, cursor_value, run_id FROM _etl.state ORDER BY pipeline")


def duckdb_reference(loads: list[tuple[str, list[tuple]]], sync: SyncSpec) -> tuple[list[tuple], str | None]:
    """The warehouse's own result for the same loads: what PostgreSQL must match."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA p")
    target = TableRef("p", "t")
    for run_id, rows in loads:
        stage(con, rows)
        plan = warehouse_state.plan_for(warehouse_state.read_state(con, "p"), sync, load_id=run_id)
        warehouse_state.commit(con, STAGE, target, plan, pipeline="p", run_id=run_id, data_columns=DATA_COLUMNS)
    rows = con.execute("SELECT id, updated_at, name, amount FROM p.t ORDER BY id, updated_at").fetchall()
    cursor = warehouse_state.saved_cursor(con, "p") if sync.mode == "incremental" else None
    con.close()
    return rows, cursor


# Types


def test_every_duckdb_type_lands_as_its_postgres_type(duck, dsn):
    duck.execute(
        "CREATE TYPE mood AS ENUM ('sad', 'ok'); "
        "CREATE TABLE p.stage AS SELECT 1::TINYINT AS tiny, 2::SMALLINT AS small, 3::INTEGER AS i, 4::BIGINT AS big, "
        "18446744073709551615::UBIGINT AS ubig, 1.5::FLOAT AS f4, 2.25::DOUBLE AS f8, 12345.67::DECIMAL(18,2) AS dec, "
        "true AS flag, DATE '2024-02-29' AS d, TIME '12:34:56' AS tm, TIMESTAMP '2024-01-02 03:04:05.123456' AS ts, "
        "TIMESTAMPTZ '2024-01-02 03:04:05+02' AS tstz, 'hé \"q\", '' x' AS txt, '{\"a\": [1, 2]}'::JSON AS doc, "
        "'6f1c3bd2-8a0e-4f3c-9d35-2f5f2b8a1c11'::UUID AS uid, 'ab'::BLOB AS raw, INTERVAL 3 DAY AS span, "
        "[1, 2] AS list, {'k': 'v'} AS struct, 'ok'::mood AS mood"
    )
    duck.execute("INSERT INTO p.stage DEFAULT VALUES")  # a row of NULLs
    postgres.commit(
        duck,
        STAGE,
        dsn=dsn,
        schema="dest",
        table="t",
        sync=SyncSpec(mode="append"),
        pipeline="p",
        run_id="r",
        data_columns=[],
    )
    types = dict(
        query(
            dsn,
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'dest.t'::regclass AND attnum > 0 ORDER BY attnum",
        )
    )
    assert types == {
        "tiny": "smallint",
        "small": "smallint",
        "i": "integer",
        "big": "bigint",
        "ubig": "numeric(20,0)",
        "f4": "real",
        "f8": "double precision",
        "dec": "numeric(18,2)",
        "flag": "boolean",
        "d": "date",
        "tm": "time without time zone",
        "ts": "timestamp without time zone",
        "tstz": "timestamp with time zone",
        "txt": "text",
        "doc": "jsonb",
        "uid": "uuid",
        "raw": "bytea",
        "span": "interval",
        "list": "jsonb",
        "struct": "jsonb",
        "mood": "text",
    }
    shown = ", ".join(f"{name}::text" for name in types)
    values = query(dsn, f"SET TIME ZONE 'UTC'; SELECT {shown} FROM dest.t ORDER BY big NULLS LAST")
    assert values[0] == (
        "1",
        "2",
        "3",
        "4",
        "18446744073709551615",
        "1.5",
        "2.25",
        "12345.67",
        "true",
        "2024-02-29",
        "12:34:56",
        "2024-01-02 03:04:05.123456",
        "2024-01-02 01:04:05+00",
        'hé "q", \' x',
        '{"a": [1, 2]}',
        "6f1c3bd2-8a0e-4f3c-9d35-2f5f2b8a1c11",
        "\\x6162",
        "3 days",
        "[1, 2]",
        '{"k": "v"}',
        "ok",
    )
    assert values[1] == (None,) * len(types)


def test_a_duckdb_type_without_a_postgres_type_is_refused_before_anything_is_sent(duck, dsn):
    duck.execute("CREATE TABLE p.stage AS SELECT '101'::BIT AS bits")
    with pytest.raises(postgres.PostgresDestinationError, match="bits.*BIT"):
        commit(duck, dsn, "append")
    assert tables(dsn) == set()


# Sync modes


def test_replace_swaps_in_exactly_the_staged_rows(duck, dsn):
    assert commit(duck, dsn, "replace", [row(1, 1, "a"), row(2, 1, "b"), row(3, 1, "c")]).rows_written == 3
    committed = commit(duck, dsn, "replace", [row(7, 2, "z")])
    assert committed.rows_written == 1 and not committed.drift
    assert query(dsn, SELECT_ROWS) == [row(7, 2, "z")]
    assert tables(dsn) == {"t"}  # no staging or half-built table left behind


def test_append_adds_every_staged_row(duck, dsn):
    rows = [row(1, 1, "a"), row(2, 1, "b")]
    commit(duck, dsn, "append", rows)
    assert commit(duck, dsn, "append", rows).rows_written == 2
    assert query(dsn, SELECT_ROWS) == sorted(rows * 2)


def test_merge_keeps_the_latest_row_per_key_as_the_warehouse_does(duck, dsn):
    sync = SyncSpec(mode="merge", primary_key=["id"], cursor="updated_at")
    first = [row(1, 1, "one v1"), row(2, 1, "two, untouched"), row(4, 1, "four v1")]
    second = [
        row(1, 3, "one v3 (highest cursor)"),
        row(1, 2, "one v2, read after v3 but older"),
        row(3, 5, "three, first read"),
        row(3, 5, "three, read last"),
        (4, None, "four without a cursor", Decimal("1")),
        row(4, 2, "four v2"),
        (5, None, "five, no cursor at all", Decimal("1")),
    ]
    commit(duck, dsn, "merge", first, primary_key=["id"], cursor="updated_at")
    assert commit(duck, dsn, "merge", second, primary_key=["id"], cursor="updated_at").rows_written == 4
    got = query(dsn, SELECT_ROWS)
    assert [name for _, _, name, _ in got] == [
        "one v3 (highest cursor)",
        "two, untouched",
        "three, read last",
        "four v2",
        "five, no cursor at all",
    ]
    assert got == duckdb_reference([("r1", first), ("r2", second)], sync)[0]


def test_merge_without_a_cursor_keeps_the_row_read_last(duck, dsn):
    commit(duck, dsn, "merge", [row(1, 1, "old")], primary_key=["id"])
    commit(duck, dsn, "merge", [row(1, 9, "first"), row(1, 2, "second"), row(1, 5, "last")], primary_key=["id"])
    assert query(dsn, SELECT_ROWS) == [row(1, 5, "last")]


@pytest.mark.parametrize("primary_key", [["id"], []], ids=["by key", "without a key"])
def test_incremental_twice_loses_nothing_and_loads_nothing_twice(duck, dsn, primary_key):
    sync = SyncSpec(mode="incremental", primary_key=primary_key, cursor="updated_at")
    first = [row(1, 1, "one"), row(2, 2, "two"), row(3, 3, "three")]
    second = [
        row(1, 1, "one, before the cursor"),
        row(3, 3, "three"),  # already loaded, at the saved cursor
        row(4, 3, "four, late at the saved cursor"),
        row(2, 4, "two, updated"),
        row(5, 5, "five, new"),
    ]
    one = commit(duck, dsn, "incremental", first, primary_key=primary_key, cursor="updated_at", run_id="run-1")
    assert (one.rows_written, one.cursor_before, one.cursor_after) == (3, None, "2024-01-03 00:00:00")
    two = commit(duck, dsn, "incremental", second, primary_key=primary_key, cursor="updated_at", run_id="run-2")
    assert (two.rows_before_cursor, two.cursor_before, two.cursor_after) == (
        1,
        "2024-01-03 00:00:00",
        "2024-01-05 00:00:00",
    )
    expected = [
        row(1, 1, "one"),
        row(2, 2, "two"),
        row(2, 4, "two, updated"),
        row(3, 3, "three"),
        row(4, 3, "four, late at the saved cursor"),
        row(5, 5, "five, new"),
    ]
    if primary_key:
        expected.remove(row(2, 2, "two"))
    assert query(dsn, SELECT_ROWS) == expected
    assert (expected, "2024-01-05 00:00:00") == duckdb_reference([("run-1", first), ("run-2", second)], sync)
    assert state(dsn) == [("p", "2024-01-05 00:00:00", "run-2")]

    again = commit(duck, dsn, "incremental", second, primary_key=primary_key, cursor="updated_at", run_id="run-3")
    assert query(dsn, SELECT_ROWS) == expected  # a repeated run changes nothing (NODUP)
    assert (again.rows_before_cursor, again.cursor_after) == (4, "2024-01-05 00:00:00")


def test_saved_cursor_and_reset_state(duck, dsn):
    assert postgres_state.saved_cursor(dsn, "p") is None  # no state table yet, and none is created
    assert "_etl" not in {s for (s,) in query(dsn, "SELECT nspname FROM pg_namespace")}
    rows = [row(1, 1, "a"), row(2, 2, "b"), row(3, 3, "c")]
    commit(duck, dsn, "incremental", rows, primary_key=["id"], cursor="updated_at")
    assert postgres_state.saved_cursor(dsn, "p") == "2024-01-03 00:00:00"

    assert postgres_state.reset_state(dsn, "p", "2024-01-02") == ("2024-01-03 00:00:00", "2024-01-02")
    assert state(dsn) == [("p", "2024-01-02", "reset")]
    rewound = commit(duck, dsn, "incremental", rows, primary_key=["id"], cursor="updated_at")
    assert (rewound.rows_before_cursor, rewound.rows_written) == (1, 2)

    assert postgres_state.reset_state(dsn, "p", None) == ("2024-01-03 00:00:00", None)
    assert postgres_state.saved_cursor(dsn, "p") is None
    forgotten = commit(duck, dsn, "incremental", rows, primary_key=["id"], cursor="updated_at")
    assert (forgotten.cursor_before, forgotten.rows_written) == (None, 3)
    assert query(dsn, SELECT_ROWS) == rows


# Atomicity


BIG_STAGE = (  # one row a second from 2024-01-01, ids from 0
    "CREATE OR REPLACE TABLE p.stage AS SELECT range AS id, TIMESTAMP '2024-01-01' + to_seconds(range) AS updated_at, "
    "'row ' || range AS name, (range % 1000)::DECIMAL(18,2) AS amount FROM range({rows})"
)


@pytest.mark.parametrize("mode, last_step", [("replace", "Transaction.replace"), ("incremental", "_save_state")])
def test_a_failure_after_the_copy_leaves_the_old_table_and_cursor(duck, dsn, monkeypatch, mode, last_step):
    sync = {"primary_key": ["id"], "cursor": "updated_at"} if mode == "incremental" else {}
    commit(duck, dsn, mode, [row(1, 1, "old")], **sync)
    postgres_state.reset_state(dsn, "p", "2024-01-01 00:00:00")
    owner, name = (
        (postgres_transaction.Transaction, "replace") if "." in last_step else (postgres_transaction, last_step)
    )
    step = getattr(owner, name)

    def step_then_fail(*args):
        step(*args)
        raise RuntimeError(f"injected after {last_step}")

    monkeypatch.setattr(owner, name, step_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        commit(duck, dsn, mode, [row(2, 2, "new"), row(3, 2, "new")], **sync)
    assert query(dsn, SELECT_ROWS) == [row(1, 1, "old")]
    assert state(dsn) == [("p", "2024-01-01 00:00:00", "reset")]

    monkeypatch.undo()  # the next run drops the staging table the failed one left
    commit(duck, dsn, mode, [row(2, 2, "new")], **sync)
    assert row(2, 2, "new") in query(dsn, SELECT_ROWS)


def test_a_row_the_table_refuses_leaves_rows_and_cursor_as_they_were(duck, dsn):
    commit(duck, dsn, "incremental", [row(1, 1, "a"), row(2, 2, "b")], primary_key=["id"], cursor="updated_at")
    execute(dsn, "ALTER TABLE dest.t ALTER COLUMN name SET NOT NULL")
    with pytest.raises(postgres.PostgresDestinationError, match="not-null"):
        commit(
            duck,
            dsn,
            "incremental",
            [row(3, 3, "c"), (4, day(4), None, Decimal(1))],
            primary_key=["id"],
            cursor="updated_at",
        )
    assert query(dsn, SELECT_ROWS) == [row(1, 1, "a"), row(2, 2, "b")]
    assert state(dsn) == [("p", "2024-01-02 00:00:00", "run-1")]


def test_readers_see_the_old_table_or_the_new_one_during_replace(duck, dsn):
    sizes = {1_000, 30_000}
    duck.execute(BIG_STAGE.format(rows=1_000))
    commit(duck, dsn, "replace")
    seen, stop = [], threading.Event()

    def read():
        pg = psycopg2.connect(dsn)
        pg.autocommit = True
        with pg.cursor() as cur:
            while not stop.is_set():
                try:
                    cur.execute("SELECT count(*) FROM dest.t")
                    seen.append(cur.fetchone()[0])
                except psycopg2.Error as err:
                    seen.append(str(err))
        pg.close()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for size in [30_000, 1_000, 30_000, 1_000]:
            duck.execute(BIG_STAGE.format(rows=size))
            commit(duck, dsn, "replace")
    finally:
        stop.set()
        reader.join()
    assert len(seen) > 10 and set(seen) <= sizes


def test_loads_into_one_table_take_turns(dsn):
    errors = []

    def append_twice():
        con = duckdb.connect()
        con.execute("CREATE SCHEMA p")
        con.execute(BIG_STAGE.format(rows=20_000))
        try:
            for _ in range(2):
                commit(con, dsn, "append")
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)
        con.close()

    loads = [threading.Thread(target=append_twice) for _ in range(3)]
    for thread in loads:
        thread.start()
    for thread in loads:
        thread.join()
    assert errors == []
    assert query(dsn, "SELECT count(*), count(DISTINCT id) FROM dest.t") == [(120_000, 20_000)]


KILLED_ROWS = 500_000
# Small batches keep the copy going long enough to be caught in the middle.
CHILD = f"""
import sys, duckdb
from etl_platform.destinations.postgres import commit as postgres
from etl_platform.spec.pipeline import SyncSpec
from etl_platform.destinations.warehouse.tables import TableRef
duck = duckdb.connect()
duck.execute("CREATE SCHEMA p")
duck.execute({BIG_STAGE.format(rows=KILLED_ROWS)!r})
postgres.commit(duck, TableRef("p", "stage"), dsn=sys.argv[1], schema="dest", table="t", rows_per_batch=10_000,
    sync=SyncSpec(mode="incremental", primary_key=["id"], cursor="updated_at"), pipeline="p", run_id="killed",
    data_columns={DATA_COLUMNS!r})
"""


def test_a_load_killed_while_copying_changes_nothing_and_a_rerun_loads_every_row_once(duck, dsn):
    duck.execute(BIG_STAGE.format(rows=1_000))
    commit(duck, dsn, "incremental", primary_key=["id"], cursor="updated_at")
    before = (query(dsn, "SELECT count(*), sum(id), max(updated_at)::text FROM dest.t"), state(dsn))

    child = subprocess.Popen([sys.executable, "-c", CHILD, dsn], cwd=PROJECT_ROOT, stderr=subprocess.PIPE)
    copied, deadline = 0, time.monotonic() + 60
    while not copied and child.poll() is None and time.monotonic() < deadline:
        copied = sum(
            n
            for (n,) in query(
                dsn, "SELECT tuples_processed FROM pg_stat_progress_copy WHERE datname = current_database()"
            )
        )
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert copied and child.returncode == -signal.SIGKILL, (
        f"the copy was not caught in progress: {child.stderr.read()!r}"
    )
    child.stderr.close()

    assert (query(dsn, "SELECT count(*), sum(id), max(updated_at)::text FROM dest.t"), state(dsn)) == before
    assert tables(dsn) == {"t", "__stage_t"}  # what the killed load left; the rerun replaces it
    duck.execute(BIG_STAGE.format(rows=KILLED_ROWS))
    rerun = commit(duck, dsn, "incremental", primary_key=["id"], cursor="updated_at", run_id="rerun")
    assert rerun.rows_before_cursor == 999
    assert query(dsn, "SELECT count(*), count(DISTINCT id), sum(id) FROM dest.t") == [
        (KILLED_ROWS, KILLED_ROWS, KILLED_ROWS * (KILLED_ROWS - 1) // 2)
    ]
    assert state(dsn) == [("p", str(datetime(2024, 1, 1) + timedelta(seconds=KILLED_ROWS - 1)), "rerun")]
    assert tables(dsn) == {"t"}


# Names


HOSTILE_SCHEMA = 'sch"; DROP SCHEMA public CASCADE; --'
HOSTILE_TABLE = "Robert'); DROP TABLE students;--"
HOSTILE_COLUMNS = ['a"; DROP TABLE x; --', "select", "ünïcødé €", "50%s off %(x)s"]


def test_hostile_names_round_trip_and_run_nothing(duck, dsn):
    execute(dsn, "CREATE TABLE public.x (v int)", "CREATE TABLE public.students (v int)")
    key, cursor, text, percent = HOSTILE_COLUMNS
    columns = f"{quote(key)} BIGINT, {quote(cursor)} TIMESTAMP, {quote(text)} VARCHAR, {quote(percent)} DOUBLE"
    sync = SyncSpec(mode="incremental", primary_key=[key], cursor=cursor)

    def load_rows(rows, run_id):
        stage(duck, rows, columns)
        return postgres.commit(
            duck,
            STAGE,
            dsn=dsn,
            schema=HOSTILE_SCHEMA,
            table=HOSTILE_TABLE,
            sync=sync,
            pipeline="p'; --",
            run_id=run_id,
            data_columns=HOSTILE_COLUMNS,
        )

    load_rows([(1, day(1), 'o\'ne "1"', 1.5), (2, day(2), "two", 2.5)], "r1")
    committed = load_rows([(2, day(2), "two, again", 2.5), (3, day(3), "three", None)], "r2")
    assert (committed.cursor_before, committed.cursor_after) == ("2024-01-02 00:00:00", "2024-01-03 00:00:00")
    target = sql.Identifier(HOSTILE_SCHEMA, HOSTILE_TABLE)
    assert query(dsn, sql.SQL("SELECT * FROM {} ORDER BY 1").format(target)) == [
        (1, day(1), 'o\'ne "1"', 1.5),
        (2, day(2), "two, again", 2.5),
        (3, day(3), "three", None),
    ]
    assert [
        name
        for (name,) in query(
            dsn,
            "SELECT attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND attnum > 0 ORDER BY attnum",
            [HOSTILE_SCHEMA, HOSTILE_TABLE],
        )
    ] == HOSTILE_COLUMNS
    assert tables(dsn, "public") == {"x", "students"}
    assert tables(dsn, HOSTILE_SCHEMA) == {HOSTILE_TABLE}
    assert postgres_state.saved_cursor(dsn, "p'; --") == "2024-01-03 00:00:00"


def test_names_postgres_would_cut_short_are_refused(duck, dsn):
    stage(duck, [row(1, 1, "a")])
    with pytest.raises(postgres.PostgresDestinationError, match="longer than"):
        postgres.commit(
            duck,
            STAGE,
            dsn=dsn,
            schema="dest",
            table="t" * 64,
            sync=SyncSpec(),
            pipeline="p",
            run_id="r",
            data_columns=[],
        )


# Schema policies


def evolve_stage(duck) -> None:
    """The load drops `amount` and brings `region`."""
    stage(duck, [(3, day(3), "c", "EU")], "id BIGINT, updated_at TIMESTAMP, name VARCHAR, region VARCHAR")


def test_freeze_names_every_difference_and_changes_nothing(duck, dsn):
    commit(duck, dsn, "append", [row(1, 1, "a")])
    evolve_stage(duck)
    with pytest.raises(SchemaMismatch) as failure:
        commit(duck, dsn, "append", policy="freeze")
    assert "new columns: region text" in str(failure.value)
    assert "missing columns: amount numeric(18,2)" in str(failure.value)
    assert query(dsn, SELECT_ROWS) == [row(1, 1, "a")]


def test_evolve_adds_new_columns_and_fills_missing_ones_with_null(duck, dsn):
    commit(duck, dsn, "append", [row(1, 1, "a")])
    evolve_stage(duck)
    committed = commit(duck, dsn, "append", policy="evolve")
    assert committed.drift.added == ("region text",) and committed.drift.dropped == ("amount numeric(18,2)",)
    assert query(dsn, "SELECT id, name, amount, region FROM dest.t ORDER BY id") == [
        (1, "a", Decimal("1.00"), None),
        (3, "c", None, "EU"),
    ]


def test_discard_leaves_new_columns_out_and_fills_missing_ones_with_null(duck, dsn):
    commit(duck, dsn, "merge", [row(1, 1, "a")], primary_key=["id"])
    evolve_stage(duck)
    commit(duck, dsn, "merge", policy="discard", primary_key=["id"])
    assert query(dsn, "SELECT id, name, amount FROM dest.t ORDER BY id") == [(1, "a", Decimal("1.00")), (3, "c", None)]
    assert "region" not in {
        c for (c,) in query(dsn, "SELECT column_name FROM information_schema.columns WHERE table_name = 't'")
    }


def test_replace_with_evolve_keeps_the_columns_the_load_lacks(duck, dsn):
    commit(duck, dsn, "replace", [row(1, 1, "a")])
    evolve_stage(duck)
    commit(duck, dsn, "replace", policy="evolve")
    assert query(dsn, "SELECT id, name, region, amount FROM dest.t") == [(3, "c", "EU", None)]


@pytest.mark.parametrize("policy", ["freeze", "evolve", "discard"])
def test_a_changed_type_fails_under_every_policy(duck, dsn, policy):
    commit(duck, dsn, "append", [row(1, 1, "a")])
    stage(duck, [(2, day(2), "b", 2.5)], "id BIGINT, updated_at TIMESTAMP, name VARCHAR, amount DOUBLE")
    with pytest.raises(SchemaMismatch, match=r"changed types: amount numeric\(18,2\) -> double precision"):
        commit(duck, dsn, "append", policy=policy)
    assert query(dsn, SELECT_ROWS) == [row(1, 1, "a")]


# Secrets


@pytest.fixture
def canary(postgres_database, dsn):
    """A role whose password is a canary: it must never appear in an error."""
    role, password = f"etl_canary_{uuid.uuid4().hex[:8]}", f"Canary/{uuid.uuid4().hex}%pw"
    execute(
        dsn,
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)),
        sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
            sql.Identifier(postgres_database["dbname"]), sql.Identifier(role)
        ),
    )
    yield role, password
    execute(
        dsn,
        sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)),
        sql.SQL("DROP ROLE {}").format(sql.Identifier(role)),
    )


def assert_hidden(failure: pytest.ExceptionInfo, password: str) -> None:
    shown = "".join(traceback.format_exception(failure.value)) + repr(failure.value)
    for form in (password, url_quote(password, safe="")):
        assert form not in shown


def test_the_password_never_appears_in_an_error(duck, dsn, postgres_database, canary):
    settings = postgres_database
    role, password = canary
    where = f"{settings['host']}:{settings['port']}/{settings['dbname']}"
    uri = f"postgresql://{role}:{url_quote(password, safe='')}@{where}"
    commit(duck, uri, "append", [row(1, 1, "a")])  # the role works

    execute(dsn, "ALTER TABLE dest.t ALTER COLUMN name SET NOT NULL")
    with pytest.raises(postgres.PostgresDestinationError, match="not-null") as failure:  # an error from the server
        commit(duck, uri, "append", [(2, day(2), None, Decimal(1))])
    assert_hidden(failure, password)

    # The test server trusts loopback, so a wrong password alone is accepted; require_auth makes the
    # client insist on a password exchange, and the attempt fails at authentication either way.
    wrong = f"postgresql://{role}:{url_quote('Wrong-' + password, safe='')}@{where}?require_auth=scram-sha-256"
    unknown = f"postgresql://nobody_{role}:{url_quote(password, safe='')}@{where}"
    refused = f"postgresql://{role}:{url_quote(password, safe='')}@{settings['host']}:1/{settings['dbname']}"
    keywords = make_dsn(**{**settings, "user": f"nobody_{role}", "password": password})
    malformed = f"host={settings['host']} user={role} password='{password} dbname=x"
    for bad, reason in [
        (wrong, "authentication"),
        (unknown, "does not exist"),
        (refused, "refused"),
        (keywords, "does not exist"),
        (malformed, "not valid"),
    ]:
        for attempt in (
            lambda bad=bad: commit(duck, bad, "append", [row(1, 1, "a")]),
            lambda bad=bad: postgres_state.saved_cursor(bad, "p"),
            lambda bad=bad: postgres_state.reset_state(bad, "p", None),
        ):
            with pytest.raises(postgres.PostgresDestinationError, match=reason) as failure:
                attempt()
            assert_hidden(failure, password)


# Replace in place: the table keeps its identity


def table_oid(dsn: str, table: str = "t") -> int:
    return query(dsn, "SELECT to_regclass(%s)::oid", [f"dest.{table}"])[0][0]


def in_thread(load, timeout: float = 60):
    """Run ``load`` in a thread and return its result; fails if it is still waiting after ``timeout``."""
    outcome = {}

    def run():
        try:
            outcome["result"] = load()
        except Exception as err:  # noqa: BLE001 - re-raised below
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the load was still waiting after {timeout} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.fixture
def role(dsn):
    """A login role of this test (roles belong to the whole server), dropped afterwards."""
    name = f"etl_role_{uuid.uuid4().hex[:8]}"
    execute(dsn, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield name
    execute(
        dsn,
        sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)),
        sql.SQL("DROP ROLE {}").format(sql.Identifier(name)),
    )


def test_a_view_on_the_table_survives_replaces_and_shows_the_new_rows(duck, dsn):
    commit(duck, dsn, "replace", [row(1, 1, "a"), row(2, 1, "b")])
    execute(dsn, "CREATE VIEW dest.v AS SELECT id, name FROM dest.t WHERE amount > 0")
    for rows in ([row(3, 2, "c")], [row(4, 3, "d"), row(5, 3, "e", "0.00")], [row(6, 4, "f")]):
        commit(duck, dsn, "replace", rows)
        assert query(dsn, "SELECT id, name FROM dest.v ORDER BY id") == [(r[0], r[2]) for r in rows if r[3] > 0]


def test_grants_indexes_comments_triggers_constraints_policies_and_the_oid_survive_a_replace(duck, dsn, role):
    commit(duck, dsn, "replace", [row(1, 1, "a"), row(2, 1, "b")])
    who = sql.Identifier(role)
    execute(
        dsn,
        sql.SQL("GRANT USAGE ON SCHEMA dest TO {0}; GRANT SELECT ON dest.t TO {0}").format(who),
        "ALTER TABLE dest.t ADD PRIMARY KEY (id)",
        "ALTER TABLE dest.t ADD CONSTRAINT amount_not_negative CHECK (amount >= 0)",
        "CREATE INDEX t_by_name ON dest.t (name)",
        "COMMENT ON TABLE dest.t IS 'orders, loaded nightly'",
        "COMMENT ON COLUMN dest.t.name IS 'customer name'",
        "CREATE TABLE dest.audit (id bigint, op text)",
        "CREATE FUNCTION dest.audit_row() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN INSERT INTO dest.audit VALUES (NEW.id, TG_OP); RETURN NULL; END$$",
        "CREATE TRIGGER t_audit AFTER INSERT ON dest.t FOR EACH ROW EXECUTE FUNCTION dest.audit_row()",
        "ALTER TABLE dest.t ENABLE ROW LEVEL SECURITY",
        sql.SQL("CREATE POLICY only_a ON dest.t FOR SELECT TO {} USING (name = 'a')").format(who),
        "ALTER TABLE dest.t SET (autovacuum_vacuum_scale_factor = 0.01)",
        "CREATE PUBLICATION t_changes FOR TABLE dest.t",
    )

    def identity():
        return {
            "oid": table_oid(dsn),
            "grant": query(dsn, "SELECT has_table_privilege(%s, 'dest.t', 'SELECT')", [role]),
            "indexes": query(
                dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = 'dest' AND tablename = 't' ORDER BY 1"
            ),
            "constraints": query(
                dsn, "SELECT conname, contype FROM pg_constraint WHERE conrelid = 'dest.t'::regclass ORDER BY 1"
            ),
            "comments": query(
                dsn, "SELECT obj_description('dest.t'::regclass, 'pg_class'), col_description('dest.t'::regclass, 3)"
            ),
            "triggers": query(dsn, "SELECT tgname FROM pg_trigger WHERE tgrelid = 'dest.t'::regclass"),
            "policies": query(dsn, "SELECT policyname, qual FROM pg_policies WHERE tablename = 't'"),
            "settings": query(dsn, "SELECT relrowsecurity, reloptions FROM pg_class WHERE oid = 'dest.t'::regclass"),
            "publication": query(dsn, "SELECT pubname FROM pg_publication_tables WHERE tablename = 't'"),
        }

    before = identity()
    assert before["triggers"] == [("t_audit",)] and before["publication"] == [("t_changes",)]
    commit(duck, dsn, "replace", [row(2, 2, "b, again"), row(3, 2, "a")])
    assert identity() == before
    assert query(dsn, SELECT_ROWS) == [row(2, 2, "b, again"), row(3, 2, "a")]
    assert query(dsn, "SELECT id, op FROM dest.audit ORDER BY id") == [(2, "INSERT"), (3, "INSERT")]  # it fired
    assert query(dsn, sql.SQL("SET ROLE {}; SELECT id FROM dest.t").format(who)) == [(3,)]  # the policy applies

    with pytest.raises(postgres.PostgresDestinationError, match="amount_not_negative"):  # the constraint is enforced
        commit(duck, dsn, "replace", [row(9, 3, "refused", "-1.00")])
    assert query(dsn, SELECT_ROWS) == [row(2, 2, "b, again"), row(3, 2, "a")]
    assert identity() == before


def test_a_load_role_that_row_level_security_applies_to_cannot_replace_and_changes_nothing(
    duck, dsn, postgres_database, role
):
    execute(
        dsn,
        sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
            sql.Identifier(postgres_database["dbname"]), sql.Identifier(role)
        ),
    )
    as_role = make_dsn(dsn, user=role)
    commit(duck, as_role, "replace", [row(1, 1, "a"), row(2, 1, "b")])  # the role owns the table it made
    execute(
        dsn,
        "ALTER TABLE dest.t ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE dest.t FORCE ROW LEVEL SECURITY",
        "CREATE POLICY only_a ON dest.t USING (name = 'a')",
    )
    with pytest.raises(postgres.PostgresDestinationError, match="row-level security applies.*Nothing was changed"):
        commit(duck, as_role, "replace", [row(3, 2, "a")])
    assert query(dsn, SELECT_ROWS) == [row(1, 1, "a"), row(2, 1, "b")]

    execute(dsn, "ALTER TABLE dest.t NO FORCE ROW LEVEL SECURITY")  # its owner now bypasses the policy
    commit(duck, as_role, "replace", [row(3, 2, "a"), row(4, 2, "b")])
    assert query(dsn, SELECT_ROWS) == [row(3, 2, "a"), row(4, 2, "b")]


@pytest.mark.parametrize(
    "keeper",
    [
        "CREATE RULE keep AS ON DELETE TO dest.t DO INSTEAD NOTHING",
        "CREATE FUNCTION dest.keep() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$; "
        "CREATE TRIGGER keep BEFORE DELETE ON dest.t FOR EACH ROW WHEN (OLD.name = 'kept') "
        "EXECUTE FUNCTION dest.keep()",
    ],
    ids=["rule", "trigger"],
)
def test_a_rule_or_trigger_that_keeps_old_rows_fails_the_replace_and_changes_nothing(duck, dsn, keeper):
    commit(duck, dsn, "replace", [row(1, 1, "kept"), row(2, 1, "b")])
    execute(dsn, keeper)
    with pytest.raises(postgres.PostgresDestinationError, match="still there.*Nothing was changed"):
        commit(duck, dsn, "replace", [row(3, 2, "c")])
    assert query(dsn, SELECT_ROWS) == [row(1, 1, "kept"), row(2, 1, "b")]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "not deferrable"])
def test_a_foreign_key_into_the_table_is_checked_against_the_new_rows(duck, dsn, deferrable):
    commit(duck, dsn, "replace", [row(1, 1, "a"), row(2, 1, "b")])
    execute(
        dsn,
        "ALTER TABLE dest.t ADD PRIMARY KEY (id)",
        f"CREATE TABLE dest.orders (customer bigint REFERENCES dest.t (id){' DEFERRABLE' if deferrable else ''})",
        "INSERT INTO dest.orders VALUES (1)",
    )
    if deferrable:
        commit(duck, dsn, "replace", [row(1, 2, "a, again"), row(3, 2, "c")])  # customer 1 is still there
        assert query(dsn, SELECT_ROWS) == [row(1, 2, "a, again"), row(3, 2, "c")]
    before = query(dsn, SELECT_ROWS)
    with pytest.raises(postgres.PostgresDestinationError, match="violates foreign key constraint"):
        commit(duck, dsn, "replace", [row(4, 3, "d")] if deferrable else [row(1, 3, "a, kept"), row(4, 3, "d")])
    assert query(dsn, SELECT_ROWS) == before


def test_a_replace_into_a_partitioned_table_keeps_its_partitions(duck, dsn):
    execute(
        dsn,
        "CREATE SCHEMA dest",
        "CREATE TABLE dest.t (id bigint, updated_at timestamp, name text, amount numeric(18,2)) PARTITION BY RANGE "
        "(updated_at)",
        "CREATE TABLE dest.t_jan PARTITION OF dest.t FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')",
        "CREATE TABLE dest.t_feb PARTITION OF dest.t FOR VALUES FROM ('2024-02-01') TO ('2024-03-01')",
    )
    oids = [table_oid(dsn, name) for name in ("t", "t_jan", "t_feb")]
    commit(duck, dsn, "replace", [row(1, 1, "jan"), row(2, 40, "feb")])
    commit(duck, dsn, "replace", [row(3, 2, "jan"), row(4, 3, "jan"), row(5, 33, "feb")])
    assert query(dsn, SELECT_ROWS) == [row(3, 2, "jan"), row(4, 3, "jan"), row(5, 33, "feb")]
    assert query(dsn, "SELECT tableoid::regclass::text, count(*) FROM dest.t GROUP BY 1 ORDER BY 1") == [
        ("dest.t_feb", 1),
        ("dest.t_jan", 2),
    ]
    with pytest.raises(postgres.PostgresDestinationError, match="no partition of relation"):
        commit(duck, dsn, "replace", [row(6, 1, "jan"), row(7, 70, "march: no partition")])
    assert query(dsn, SELECT_ROWS) == [row(3, 2, "jan"), row(4, 3, "jan"), row(5, 33, "feb")]
    assert [table_oid(dsn, name) for name in ("t", "t_jan", "t_feb")] == oids


def test_a_changed_type_fails_a_replace_with_the_difference_and_changes_nothing(duck, dsn):
    commit(duck, dsn, "replace", [row(1, 1, "a")])
    oid = table_oid(dsn)
    stage(
        duck,
        [(2, day(2), "b", 2.5, "EU")],
        "id BIGINT, updated_at TIMESTAMP, name VARCHAR, amount DOUBLE, region VARCHAR",
    )
    with pytest.raises(SchemaMismatch, match=r"changed types: amount numeric\(18,2\) -> double precision"):
        commit(duck, dsn, "replace", policy="evolve")
    assert query(dsn, "SELECT * FROM dest.t") == [row(1, 1, "a")]  # no region column either
    assert table_oid(dsn) == oid


def read_in(dsn: str, isolation: str):
    pg = psycopg2.connect(dsn)
    pg.set_session(isolation_level=isolation)
    return pg


@pytest.mark.parametrize("isolation", ["REPEATABLE READ", "SERIALIZABLE"])
@pytest.mark.parametrize("first_read", ["the table", "another table"])
def test_a_reader_opened_before_a_replace_sees_the_old_rows_until_it_ends_then_the_new_ones(
    duck, dsn, isolation, first_read
):
    old, new = [row(1, 1, "old"), row(2, 1, "old")], [row(3, 2, "new")]
    commit(duck, dsn, "replace", old)
    execute(dsn, "CREATE TABLE dest.other (v int)")
    reader = read_in(dsn, isolation)
    try:
        with reader.cursor() as cur:
            # Reading another table takes the snapshot without a lock on dest.t: that is the reader
            # TRUNCATE or a table swapped in would show an empty table.
            cur.execute(SELECT_ROWS if first_read == "the table" else "SELECT count(*) FROM dest.other")
            in_thread(lambda: commit(duck, dsn, "replace", new))  # does not wait for the reader
            assert query(dsn, SELECT_ROWS) == new
            cur.execute(SELECT_ROWS)
            assert cur.fetchall() == old
            reader.commit()
            cur.execute(SELECT_ROWS)
            assert cur.fetchall() == new
    finally:
        reader.close()


@pytest.mark.parametrize(
    "swap",
    [
        ["TRUNCATE dest.t", "INSERT INTO dest.t SELECT * FROM dest.s"],
        ["CREATE TABLE dest.t_new AS SELECT * FROM dest.s", "DROP TABLE dest.t", "ALTER TABLE dest.t_new RENAME TO t"],
    ],
    ids=["truncate", "table swapped in"],
)
def test_truncate_or_a_table_swap_shows_a_reader_with_an_older_snapshot_an_empty_table(dsn, swap):
    """Why a replace deletes: what the alternatives show on this server (PostgreSQL's docs, MVCC caveats)."""
    execute(
        dsn,
        "CREATE SCHEMA dest",
        "CREATE TABLE dest.t (v int)",
        "INSERT INTO dest.t VALUES (1), (2)",
        "CREATE TABLE dest.s (v int)",
        "INSERT INTO dest.s VALUES (3)",
        "CREATE TABLE dest.other (v int)",
    )
    reader = read_in(dsn, "REPEATABLE READ")
    with reader.cursor() as cur:
        cur.execute("SELECT count(*) FROM dest.other")
        pg = psycopg2.connect(dsn)
        with pg, pg.cursor() as writer:
            for statement in swap:
                writer.execute(statement)
        pg.close()
        cur.execute("SELECT v FROM dest.t")
        assert cur.fetchall() == []  # neither the old rows (1, 2) nor the new one (3)
    reader.close()


def stage_range(duck, start: int, end: int, extra: str = "") -> None:
    """Staged rows with ids ``start`` to ``end - 1``, one a second; ``extra`` adds columns."""
    duck.execute(
        "CREATE OR REPLACE TABLE p.stage AS SELECT range AS id, TIMESTAMP '2024-01-01' + to_seconds(range) AS "
        "updated_at, "
        f"'row ' || range AS name, (range % 1000)::DECIMAL(18,2) AS amount{extra} FROM range({start}, {end})"
    )


def test_concurrent_readers_never_see_a_partial_or_empty_table_during_replaces(duck, dsn):
    loads = [(0, 20_000), (50_000, 51_000), (100_000, 130_000), (0, 1), (200_000, 220_000)]
    expected = {(end - start, sum(range(start, end))) for start, end in loads}
    stage_range(duck, *loads[0])
    commit(duck, dsn, "replace")
    execute(dsn, "CREATE VIEW dest.v AS SELECT * FROM dest.t", "CREATE TABLE dest.other (v int)")
    seen, stop = [], threading.Event()

    def read(isolation: str, through: str):
        pg = read_in(dsn, isolation)
        with pg.cursor() as cur:
            while not stop.is_set():
                try:
                    # the snapshot is taken before the read, as a report reading several tables does
                    cur.execute("SELECT count(*) FROM dest.other")
                    time.sleep(0.002)
                    cur.execute(f"SELECT count(*), sum(id) FROM {through}")
                    seen.append((isolation, *cur.fetchone()))
                    pg.commit()
                except psycopg2.Error as err:
                    seen.append((isolation, str(err)))
                    pg.rollback()
        pg.close()

    readers = [
        threading.Thread(target=read, args=args)
        for args in [("READ COMMITTED", "dest.t"), ("REPEATABLE READ", "dest.t"), ("REPEATABLE READ", "dest.v")]
    ]
    for reader in readers:
        reader.start()
    try:
        for start, end in loads[1:]:
            stage_range(duck, start, end)
            commit(duck, dsn, "replace")
            time.sleep(0.05)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert {tuple(s[1:]) for s in seen} <= expected, {tuple(s[1:]) for s in seen} - expected
    assert len({tuple(s[1:]) for s in seen}) >= 3  # the readers saw the table change
    assert {s[0] for s in seen} == {"READ COMMITTED", "REPEATABLE READ"}


KILL_ROWS = 100_000
# Killed at a point: while copying, while deleting the old rows, while inserting the new ones,
# or with the transaction done and not yet committed. The load also adds a column (evolve).
REPLACE_CHILD = f"""
import sys, time, duckdb
from etl_platform.destinations.postgres import commit as postgres
from etl_platform.destinations.postgres import transaction as postgres_transaction
from etl_platform.spec.pipeline import SyncSpec
from etl_platform.destinations.warehouse.tables import TableRef
if sys.argv[2] == "before the commit":
    replace = postgres_transaction.Transaction.replace
    def replace_then_wait(*args):
        rows = replace(*args)
        print("replaced", flush=True)
        time.sleep(120)
        return rows
    postgres_transaction.Transaction.replace = replace_then_wait
duck = duckdb.connect()
duck.execute("CREATE SCHEMA p")
duck.execute("CREATE TABLE p.stage AS SELECT range AS id, TIMESTAMP '2024-06-01' + to_seconds(range) AS updated_at, "
             "'new ' || range AS name, 1.00::DECIMAL(18,2) AS amount, 'EU' AS region FROM range({KILL_ROWS})")
postgres.commit(duck, TableRef("p", "stage"), dsn=sys.argv[1], schema="dest", table="t", rows_per_batch=5_000,
    sync=SyncSpec(mode="replace"), pipeline="p", run_id="killed", data_columns=[], schema_policy="evolve")
"""
RUNNING = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE %s"
)
KILL_POINTS = {
    "copying": (
        "SELECT count(*) FROM pg_stat_progress_copy WHERE datname = current_database() AND tuples_processed > 0",
        [],
    ),
    "deleting": (RUNNING, ['DELETE FROM "dest"."t"%']),
    "inserting": (RUNNING, ['INSERT INTO "dest"."t"%']),
    "before the commit": None,
}


@pytest.fixture(scope="module")
def child_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a load in a child process: bytecode cached for the module's children,
    where the environment says not to write it (importing the ADBC driver imports pandas: 10 s to compile)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(tmp_path_factory.mktemp("pycache"))}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_replace_killed_at_any_point_leaves_the_old_rows_and_a_rerun_replaces_them(duck, dsn, child_env, point):
    stage_range(duck, 0, KILL_ROWS)
    commit(duck, dsn, "replace")
    execute(dsn, "CREATE VIEW dest.v AS SELECT id, name FROM dest.t")
    fingerprint = (
        "SELECT count(*), sum(id), min(name), max(updated_at)::text, (SELECT count(*) FROM dest.v) FROM dest.t"
    )
    shape = (
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'dest.t'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )
    before = (query(dsn, fingerprint), table_oid(dsn), query(dsn, shape))

    child = subprocess.Popen(
        [sys.executable, "-c", REPLACE_CHILD, dsn, point],
        cwd=PROJECT_ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    caught = False
    if KILL_POINTS[point] is None:
        caught = child.stdout.readline() == "replaced\n"
    else:
        watch = psycopg2.connect(dsn)
        watch.autocommit = True
        statement, params = KILL_POINTS[point]
        with watch.cursor() as cur:
            deadline = time.monotonic() + 60
            while not caught and child.poll() is None and time.monotonic() < deadline:
                cur.execute(statement, params)
                caught = cur.fetchone()[0] > 0
                time.sleep(0.002)  # leave the load and the server the CPU
        watch.close()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    stderr = child.stderr.read()
    child.stdout.close()
    child.stderr.close()
    assert caught and child.returncode == -signal.SIGKILL, f"the load was not caught {point}: {stderr!r}"

    assert (query(dsn, fingerprint), table_oid(dsn), query(dsn, shape)) == before  # no region column either
    stage_range(duck, 0, 10, ", 'EU' AS region")
    commit(duck, dsn, "replace", policy="evolve")
    assert query(dsn, "SELECT count(*), count(region) FROM dest.t") == [(10, 10)]
    assert table_oid(dsn) == before[1] and tables(dsn) == {"t"}


# Generated: sequences of replaces with random rows and columns; the oracle is the last load that fit.

_PG_TYPE = {
    "BIGINT": "bigint",
    "VARCHAR": "text",
    "DECIMAL(18,2)": "numeric(18,2)",
    "TIMESTAMP": "timestamp without time zone",
    "DOUBLE": "double precision",
    "BOOLEAN": "boolean",
}
_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)
_VALUES = {
    "BIGINT": st.one_of(st.integers(0, 3), st.integers(-(2**63), 2**63 - 1)),
    "VARCHAR": _TEXT,
    "DECIMAL(18,2)": st.decimals(-(10**16) + 1, 10**16 - 1, places=2, allow_nan=False, allow_infinity=False),
    "TIMESTAMP": st.datetimes(),
    "DOUBLE": st.floats(),  # NaN, infinities and -0.0 included
    "BOOLEAN": st.booleans(),
}
# Each column has its usual type; a load may bring it as text instead, which the table refuses.
_OPTIONAL = {
    "amount": "DECIMAL(18,2)",
    "updated_at": "TIMESTAMP",
    "score": "DOUBLE",
    "flag": "BOOLEAN",
    "note": "VARCHAR",
}


@st.composite
def replace_loads(draw):
    loads = []
    for _ in range(draw(st.integers(1, 4))):
        optional = draw(st.lists(st.sampled_from(list(_OPTIONAL)), unique=True))
        types = {"id": "BIGINT", "name": "VARCHAR"} | {
            c: draw(st.sampled_from([_OPTIONAL[c], "VARCHAR"])) for c in optional
        }
        names = draw(st.permutations(list(types)))
        value = st.tuples(*[st.none() | _VALUES[types[c]] for c in names])
        rows = draw(st.lists(value, max_size=10) | st.lists(value, min_size=1, max_size=2).map(lambda r: r * 3))
        loads.append(([(c, types[c]) for c in names], rows))
    return loads


def exactly(values) -> tuple:
    """Values compared as their repr: -0.0 is not 0.0, 1.0 is not 1.00, NaN is NaN (fold is not a value)."""
    return tuple(repr(v.replace(fold=0) if isinstance(v, datetime) else v) for v in values)


_tables = itertools.count()


@settings(max_examples=examples(15))
@given(loads=replace_loads())
def test_generated_replaces_leave_exactly_the_last_loads_rows_in_the_same_table(duck, dsn, loads):
    table = f"t{next(_tables)}"
    expected_types: dict[str, str] = {}  # the oracle: the table's columns, then its rows
    expected_rows: Counter = Counter()
    oid = None
    for columns, rows in loads:
        stage(duck, rows, ", ".join(f"{quote(c)} {t}" for c, t in columns))
        loaded = {c: _PG_TYPE[t] for c, t in columns}
        changed = [c for c, t in loaded.items() if expected_types.get(c, t) != t]
        try:
            postgres.commit(
                duck,
                STAGE,
                dsn=dsn,
                schema="dest",
                table=table,
                sync=SyncSpec(mode="replace"),
                pipeline="p",
                run_id="r",
                data_columns=list(loaded),
                schema_policy="evolve",
            )
        except SchemaMismatch as err:
            assert changed and all(c in str(err) for c in changed)
        else:
            assert not changed
            expected_types |= {c: t for c, t in loaded.items() if c not in expected_types}
            where = [[c for c, _ in columns].index(c) if c in loaded else None for c in expected_types]
            expected_rows = Counter(exactly(None if i is None else r[i] for i in where) for r in rows)
        got_types = query(
            dsn,
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 ORDER BY attnum",
            [f"dest.{table}"],
        )
        assert got_types == list(expected_types.items())
        if expected_types:
            listed = sql.SQL(", ").join(sql.Identifier(c) for c in expected_types)
            got = query(dsn, sql.SQL("SELECT {} FROM {}").format(listed, sql.Identifier("dest", table)))
            assert Counter(exactly(r) for r in got) == expected_rows
            oid = oid or table_oid(dsn, table)
            assert table_oid(dsn, table) == oid
