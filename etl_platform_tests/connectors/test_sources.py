"""Database and API sources loaded through Dagster into the warehouse, against real servers."""

import json
import re
import subprocess
import sys
import time

import dagster as dg
import psycopg2
import pymysql
import pytest

from etl_platform.connectors.connections import as_resource, resource_key
from etl_platform.connectors.registry import build
from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform_tests.conftest import (
    PROJECT_ROOT,
    check_results,
    failure_message,
    materializations,
    query,
    scalar,
    step_attempts,
)


def pipeline_defs(name: str, spec: dict, connection: dict) -> dg.Definitions:
    parsed = PipelineSpec.model_validate(spec)
    connector = build("src", connection.pop("kind"), connection)
    ctx = PipelineContext(name=name, names=table_names(parsed, name), defined_at={}, connection_kind=connector.kind)
    resources = {"warehouse": WarehouseResource(), resource_key("src"): as_resource(connector)}
    return dg.Definitions.merge(build_pipeline_defs(parsed, ctx), dg.Definitions(resources=resources))


def run(defs: dg.Definitions, name: str, instance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(f"{name}_job").execute_in_process(instance=instance, raise_on_error=False)


def pg_connection(db: dict, **extra) -> dict:
    return {
        "kind": "postgres",
        "host": db["host"],
        "port": db["port"],
        "database": db["dbname"],
        "user": db["user"],
        **extra,
    }


def pg_execute(db: dict, *statements: str, params=None) -> None:
    with psycopg2.connect(**db) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql, params)


EVENTS = """CREATE TABLE events (id BIGINT PRIMARY KEY, updated_at TIMESTAMPTZ NOT NULL,
    amount NUMERIC(10,2), note TEXT, tags JSONB)"""


def test_postgres_incremental_twice_loses_nothing_and_loads_nothing_twice(postgres_database, etl_home, instance):
    db = postgres_database
    pg_execute(
        db,
        EVENTS,
        "INSERT INTO events SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', g / 100.0, "
        "'note ' || g, jsonb_build_object('g', g) FROM generate_series(1, 5000) g",
    )
    spec = {
        "source": {"connection": "src", "table": "public.events"},
        "sync": {"mode": "incremental", "primary_key": ["id"], "cursor": "updated_at"},
        "destination": {"table": "events", "lineage_columns": False},
    }
    defs = pipeline_defs("pg_events", spec, pg_connection(db))
    first = run(defs, "pg_events", instance)
    assert first.success
    meta = materializations(first)["pg_events/events"]
    assert meta["rows_read"] == meta["rows_written"] == 5000
    assert meta["cursor_before"] == "" and meta["cursor_after"].startswith("2024-01-04 11:20:00")
    assert query(
        etl_home, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'events' ORDER BY column_index"
    ) == [("BIGINT",), ("TIMESTAMP WITH TIME ZONE",), ("DECIMAL(10,2)",), ("VARCHAR",), ("JSON",)]

    # New rows, an update of an old row, and a late row whose cursor equals the saved one.
    pg_execute(
        db,
        "INSERT INTO events SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute', 1, 'new', NULL "
        "FROM generate_series(5001, 5100) g",
        "UPDATE events SET amount = 999.99, updated_at = timestamptz '2024-02-01 00:00:00+00' WHERE id = 7",
        "INSERT INTO events VALUES (900000, timestamptz '2024-01-04 11:20:00+00', 5, 'late', NULL)",
    )
    second = run(defs, "pg_events", instance)
    assert second.success
    meta = materializations(second)["pg_events/events"]
    # Only rows at or after the saved cursor were read from PostgreSQL: the last old row, the late one,
    # 100 new, 1 updated.
    assert meta["rows_read"] == 103
    assert meta["cursor_before"].startswith("2024-01-04 11:20:00")
    assert meta["cursor_after"].startswith("2024-02-01 00:00:00")
    with psycopg2.connect(**db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, amount::text, note FROM events ORDER BY id")
        expected = [(i, a, n) for i, a, n in cur.fetchall()]
    loaded = query(etl_home, "SELECT id, amount::VARCHAR, note FROM pg_events.events ORDER BY id")
    assert loaded == expected  # EQ and NODUP: the warehouse equals the source, row for row


READ_IN_A_FRESH_PROCESS = """
import json, sys
import duckdb
from etl_platform.connectors.registry import build
connector = build("src", "postgres", json.loads(sys.argv[1]))
con = duckdb.connect()
with connector.stream(sys.argv[2]) as stream:
    con.register("source", stream.reader)
    types = {name: stream.type_hints.get(name, dtype) for name, dtype, *_ in con.execute("DESCRIBE source").fetchall()}
    rows = con.execute("SELECT * FROM source ORDER BY id").fetchall()
print(json.dumps({"types": types, "rows": [[str(v) for v in row] for row in rows],
                  "imported": sorted(m for m in ("pyarrow", "numpy", "pandas") if m in sys.modules)}))
"""


def test_a_postgres_read_types_numeric_columns_without_importing_pyarrow(postgres_database):
    """The driver's Arrow stream goes to DuckDB as it is: numeric's precision and scale come
    from the stream's own field metadata, and a small read does not pay for pyarrow and numpy."""
    pg_execute(
        postgres_database,
        "CREATE TABLE prices (id INT PRIMARY KEY, exact NUMERIC(12,3), loose NUMERIC, doc JSONB, at TIMESTAMPTZ)",
        "INSERT INTO prices VALUES (1, 1234.5, 0.1, '{\"a\": 1}', '2024-05-01 10:00:00+00'), (2, NULL, "
        "12345678901234567890, NULL, NULL)",
    )
    options = pg_connection(postgres_database)
    del options["kind"]
    out = subprocess.run(
        [sys.executable, "-c", READ_IN_A_FRESH_PROCESS, json.dumps(options), "SELECT * FROM prices"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert out.returncode == 0, out.stderr
    read = json.loads(out.stdout)
    assert read["types"] == {
        "id": "INTEGER",
        "exact": "DECIMAL(12,3)",
        "loose": "VARCHAR",
        "doc": "JSON",
        "at": "TIMESTAMP WITH TIME ZONE",
    }  # numeric without precision: its exact text
    assert read["rows"][0][:4] == ["1", "1234.500", "0.1", '{"a": 1}']
    assert read["rows"][1] == ["2", "None", "12345678901234567890", "None", "None"]
    assert read["imported"] == []


def test_mariadb_query_merge_and_types(mariadb_database, etl_home, instance):
    db = mariadb_database
    conn = pymysql.connect(**db, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100), balance DECIMAL(12,2), born DATE, seen "
            "DATETIME, vip TINYINT)"
        )
        cur.executemany(
            "INSERT INTO customers VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (i, f"customer {i} ü", i * 1.5, f"1990-01-{i % 28 + 1:02d}", f"2024-03-01 10:{i % 60:02d}:00", i % 2)
                for i in range(1, 1201)
            ],
        )
    spec = {
        "source": {"connection": "src", "query": "SELECT id, name, balance, born, seen FROM customers WHERE vip = 1"},
        "sync": {"mode": "merge", "primary_key": ["id"]},
        "rules": [{"name": "balance too high", "check": "balance < 1500"}],
        "destination": {"table": "customers"},
    }
    connection = {
        "kind": "mysql",
        "host": db["host"],
        "port": db["port"],
        "database": db["database"],
        "user": db["user"],
    }
    defs = pipeline_defs("maria", spec, connection)
    result = run(defs, "maria", instance)
    assert result.success
    meta = materializations(result)["maria/customers"]
    assert meta["rows_read"] == 600 and meta["rows_rejected"] == 100  # vip ids 1001..1199 have balance 1501.5 and up
    assert meta["rows_rejected"] + meta["rows_accepted"] == meta["rows_read"]  # Q
    types = dict(query(etl_home, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'customers'"))
    assert (
        re.fullmatch(r"DECIMAL\(\d+,2\)", types["balance"]) and types["born"] == "DATE" and types["seen"] == "TIMESTAMP"
    )
    assert scalar(etl_home, "SELECT name FROM maria.customers WHERE id = 1") == "customer 1 ü"
    rejected = query(
        etl_home,
        "SELECT source_file, source_line, reasons FROM maria.customers_rejected WHERE kind = 'rule' ORDER BY "
        "source_line",
    )
    assert rejected[0][0] == "query" and rejected[0][2] == ["balance too high"]
    # Merge again after a change at the source: the row is updated, not duplicated.
    with conn.cursor() as cur:
        cur.execute("UPDATE customers SET name = 'renamed' WHERE id = 1")
    assert run(defs, "maria", instance).success
    assert query(etl_home, "SELECT count(*), count(DISTINCT id) FROM maria.customers") == [
        (meta["rows_accepted"], meta["rows_accepted"])
    ]
    assert scalar(etl_home, "SELECT name FROM maria.customers WHERE id = 1") == "renamed"


def test_sqlite_and_duckdb_files_as_sources(tmp_path, etl_home, instance):
    import sqlite3

    import duckdb

    lite = tmp_path / "shop.sqlite"
    with sqlite3.connect(lite) as con:
        con.execute("CREATE TABLE items (sku TEXT, price REAL, qty INTEGER)")
        con.executemany("INSERT INTO items VALUES (?, ?, ?)", [(f"s{i}", i * 0.5, i) for i in range(300)])
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE metrics AS SELECT range AS id, range * 2 AS doubled FROM range(250)")
    spec = {
        "source": {"connection": "src", "table": "items"},
        "sync": {"mode": "append"},
        "destination": {"table": "items"},
    }
    defs = pipeline_defs("lite", spec, {"kind": "sqlite", "path": str(lite)})
    assert run(defs, "lite", instance).success and run(defs, "lite", instance).success
    assert scalar(etl_home, "SELECT count(*) FROM lite.items") == 600  # appended twice
    spec = {"source": {"connection": "src", "table": "metrics"}, "destination": {"table": "metrics"}}
    defs = pipeline_defs("duck", spec, {"kind": "duckdb", "path": str(other)})
    assert run(defs, "duck", instance).success
    assert scalar(etl_home, "SELECT sum(doubled) FROM duck.metrics") == sum(range(250)) * 2


@pytest.mark.parametrize("policy", ["evolve", "freeze", "discard"])
def test_schema_drift_follows_the_policy_and_the_check_shows_the_difference(
    postgres_database, etl_home, instance, policy
):
    db = postgres_database
    pg_execute(db, "CREATE TABLE t (id INT, a TEXT)", "INSERT INTO t VALUES (1, 'x')")
    spec = {
        "source": {"connection": "src", "table": "t"},
        "sync": {"mode": "append"},
        "destination": {"table": "t", "schema_changes": policy, "lineage_columns": False},
    }
    defs = pipeline_defs("drift", spec, pg_connection(db))
    first = run(defs, "drift", instance)
    assert check_results(first)["drift/t:schema_drift"] is True
    pg_execute(db, "ALTER TABLE t ADD COLUMN b BIGINT", "ALTER TABLE t DROP COLUMN a", "INSERT INTO t VALUES (2, 20)")
    second = run(defs, "drift", instance)
    columns = [
        c
        for (c,) in query(
            etl_home, "SELECT column_name FROM duckdb_columns() WHERE table_name = 't' ORDER BY column_index"
        )
    ]
    rows = query(etl_home, "SELECT * FROM drift.t ORDER BY id")
    if policy == "freeze":
        assert not second.success
        failure = second.get_step_failure_events()[0].step_failure_data.error.message
        assert "new columns: b BIGINT" in failure and "missing columns: a VARCHAR" in failure
        assert columns == ["id", "a"] and rows == [(1, "x")]  # nothing changed
        return
    assert second.success
    assert check_results(second)["drift/t:schema_drift"] is False  # shown as a warning with the difference
    if policy == "evolve":
        assert columns == ["id", "a", "b"]
        assert rows == [(1, "x", None), (1, None, None), (2, None, 20)]
    else:
        assert columns == ["id", "a"]
        assert rows == [(1, "x"), (1, None), (2, None)]


def test_a_changed_type_fails_even_when_evolving(postgres_database, etl_home, instance):
    db = postgres_database
    pg_execute(db, "CREATE TABLE t (id INT, v INT)", "INSERT INTO t VALUES (1, 1)")
    spec = {"source": {"connection": "src", "table": "t"}, "sync": {"mode": "append"}, "destination": {"table": "t"}}
    defs = pipeline_defs("typed", spec, pg_connection(db))
    assert run(defs, "typed", instance).success
    pg_execute(db, "ALTER TABLE t ALTER COLUMN v TYPE TEXT")
    result = run(defs, "typed", instance)
    assert not result.success
    assert "changed types: v INTEGER -> VARCHAR" in result.get_step_failure_events()[0].step_failure_data.error.message
    assert scalar(etl_home, "SELECT count(*) FROM typed.t") == 1


def test_hostile_table_and_column_names_load_as_data(postgres_database, etl_home, instance):
    db = postgres_database
    table = 'we"ird; DROP TABLE x;--'
    pg_execute(
        db,
        f'CREATE TABLE "{table.replace(chr(34), chr(34) * 2)}" ("a""b" INT, "select" TEXT, "Robert\'); DROP TABLE '
        'students;--" TEXT)',
        f"INSERT INTO \"{table.replace(chr(34), chr(34) * 2)}\" VALUES (1, 's', 'r')",
    )
    spec = {"source": {"connection": "src", "table": f"public.{table}"}, "destination": {"table": "weird"}}
    result = run(pipeline_defs("hostile", spec, pg_connection(db)), "hostile", instance)
    assert result.success
    columns = [
        c
        for (c,) in query(
            etl_home, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'weird' ORDER BY column_index"
        )
    ]
    assert columns[:3] == ['a"b', "select", "Robert'); DROP TABLE students;--"]
    assert query(etl_home, 'SELECT "a""b", "select" FROM hostile.weird') == [(1, "s")]


def test_bad_credentials_fail_clearly_without_the_password(postgres_database, etl_home, instance, monkeypatch):
    db = postgres_database
    canary = "canary-" + str(time.time_ns())
    pg_execute(db, "CREATE TABLE t (id INT)")
    # The local server trusts loopback, so a wrong password would be accepted; a port nobody
    # listens on fails the connection instead, and the driver's error still names the target.
    monkeypatch.setenv("SRC_PASSWORD", canary)
    spec = {
        "source": {"connection": "src", "table": "t"},
        "destination": {"table": "t"},
        "retries": {"max_retries": 1, "delay_seconds": 0.1},
    }
    connection = pg_connection(db, port=1, user="reader", password={"env": "SRC_PASSWORD"})
    result = run(pipeline_defs("creds", spec, connection), "creds", instance)
    assert not result.success and step_attempts(result) == 2  # a refused connection may pass: retried once
    message = failure_message(result)
    assert "postgres connection src: connecting failed" in message
    everything = json.dumps([str(e) for e in result.all_events]) + message
    assert canary not in everything


def test_a_missing_secret_fails_the_step_by_name(postgres_database, etl_home, instance, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    spec = {"source": {"connection": "src", "table": "t"}, "destination": {"table": "t"}}
    connection = pg_connection(postgres_database, password={"env": "NOT_SET_ANYWHERE"})
    result = run(pipeline_defs("nosecret", spec, connection), "nosecret", instance)
    assert not result.success
    assert (
        "environment variable NOT_SET_ANYWHERE is not set"
        in result.get_step_failure_events()[0].step_failure_data.error.message
    )


KILLED_LOAD = """
import sys
from etl_platform_tests.connectors.test_sources import pipeline_defs
import dagster as dg
spec = {"source": {"connection": "src", "table": "big"},
        "sync": {"mode": "incremental", "primary_key": ["id"], "cursor": "id"},
        "destination": {"table": "big"}}
defs = pipeline_defs("killed", spec, {"kind": "postgres", "host": "127.0.0.1", "port": %(port)d,
                                      "database": "%(db)s", "user": "%(user)s"})
with dg.instance_for_test() as instance:
    ok = defs.resolve_job_def("killed_job").execute_in_process(instance=instance, raise_on_error=False).success
sys.exit(0 if ok else 1)
"""


def test_a_load_killed_midway_then_rerun_loads_everything_once(postgres_database, etl_home, tmp_path):
    db = postgres_database
    pg_execute(db, "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 1000) g")
    script = KILLED_LOAD % {"port": db["port"], "db": db["dbname"], "user": db["user"]}
    assert subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, timeout=300).returncode == 0
    assert scalar(etl_home, "SELECT count(*) FROM killed.big") == 1000
    pg_execute(db, "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1001, 3000000) g")
    child = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_ROOT)
    try:
        # Kill it while it streams the 3M new rows: once PostgreSQL shows its SELECT running.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            with psycopg2.connect(**db) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
                    "AND query LIKE '%%FROM \"big\"%%'"
                )
                if cur.fetchone()[0]:
                    time.sleep(0.5)
                    break
            time.sleep(0.05)
        child.kill()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -9, "the load finished before it could be killed"
    # The old table and its cursor are intact: nothing of the killed run is visible.
    assert scalar(etl_home, "SELECT count(*) FROM killed.big") == 1000
    assert scalar(etl_home, "SELECT cursor_value FROM _etl.state WHERE pipeline = 'killed'") == "1000"
    assert subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, timeout=600).returncode == 0
    assert query(etl_home, "SELECT count(*), count(DISTINCT id), max(id) FROM killed.big") == [
        (3_000_000, 3_000_000, 3_000_000)
    ]


def test_an_s3_file_pipeline_loads_through_dagster(s3_bucket, etl_home, instance):  # noqa: F811
    s3_bucket.put("exports/2024/a.csv", "id,amount\n1,10\n2,oops\n")
    s3_bucket.put("exports/2024/b.csv", "id,amount\n3,30\n")
    s3_bucket.put("other/c.csv", "id,amount\n4,40\n")
    spec = {
        "source": {
            "connection": "src",
            "files": "2024/*.csv",
            "columns": {"id": {"type": "bigint"}, "amount": {"type": "bigint"}},
        },
        "destination": {"table": "amounts"},
    }
    result = run(pipeline_defs("lake", spec, {"kind": "s3", **s3_bucket.options(prefix="exports/")}), "lake", instance)
    assert result.success
    meta = materializations(result)["lake/amounts"]
    assert (meta["rows_read"], meta["rows_accepted"], meta["rows_rejected"]) == (3, 2, 1)
    assert query(etl_home, "SELECT _source_file, id FROM lake.amounts ORDER BY id") == [
        ("2024/a.csv", 1),
        ("2024/b.csv", 3),
    ]
    assert query(etl_home, "SELECT source_file, source_line FROM lake.amounts_rejected") == [("2024/a.csv", 3)]


def test_rest_api_incremental_through_dagster_with_auth_pages_and_a_429(tmp_path, etl_home, instance, monkeypatch):
    import threading

    from etl_platform_tests.connectors.test_rest import CUSTOMERS, Api, ApiServer, Handler

    token = "canary-token-5d1e"
    monkeypatch.setenv("CRM_API_TOKEN", token)
    api = ApiServer(("127.0.0.1", 0), Handler)
    api.api = Api(auth=("bearer", token))
    threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        spec = {
            "source": {
                "connection": "src",
                "endpoint": {
                    "path": "pages",
                    "records_path": "data.items",
                    "pagination": {"type": "page_number"},
                    "page_size": 100,
                    "incremental": {
                        "param": "updated_since",
                        "cursor_field": "updated_at",
                        "since_format": "%Y-%m-%dT%H:%M:%SZ",
                    },
                },
            },
            "sync": {"mode": "incremental", "cursor": "updated_at", "primary_key": ["id"]},
            "destination": {"table": "customers"},
        }
        connection = {
            "kind": "rest",
            "base_url": api.base_url,
            "auth": {"type": "bearer", "token": {"env": "CRM_API_TOKEN"}},
            "backoff_seconds": 0,
        }
        defs = pipeline_defs("crm_api", spec, connection)
        first = run(defs, "crm_api", instance)
        assert first.success
        meta = materializations(first)["crm_api/customers"]
        assert meta["rows_read"] == meta["rows_written"] == len(CUSTOMERS)
        assert meta["cursor_after"].startswith("2024-01-25 00:00:00")
        assert len(api.api.seen) == 13  # 1,234 records in pages of 100

        api.api.seen.clear()
        api.api.failures.append((429, {"Retry-After": "0"}, '{"error": "slow down"}'))
        second = run(defs, "crm_api", instance)
        assert second.success
        meta = materializations(second)["crm_api/customers"]
        assert meta["rows_read"] == 34  # only the records at the saved cursor, merged by id again
        assert all("updated_since=2024-01-25T00%3A00%3A00Z" in path for path in api.api.seen)
        assert len(api.api.seen) == 2  # the 429, then the page again
        assert query(etl_home, "SELECT count(*), count(DISTINCT id) FROM crm_api.customers") == [(1234, 1234)]
        logged = [str(e.dagster_event or "") + (e.user_message or "") for e in instance.all_logs(second.run_id)]
        assert logged and not any(token in line for line in logged)
    finally:
        api.shutdown()
        api.server_close()
