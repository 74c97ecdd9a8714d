"""Every sync mode into every destination, through Dagster: PostgreSQL, Parquet files in a
local folder, CSV files on an S3-compatible server, and the warehouse, the same expectations."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import psycopg2
import pytest

from etl_platform.connectors.connections import as_resource, resource_key
from etl_platform.connectors.registry import build
from etl_platform.destinations.files.reading import read_table
from etl_platform.destinations.files.storage import FilesLocation
from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform_tests.conftest import failure_message, materializations, query, step_attempts

HEADER = "id,updated_at,amount,note\n"
DAY1 = HEADER + "".join(f"{i},2024-01-01 0{i}:00:00,{i}.50,v1-{i}\n" for i in range(1, 6))
# An update of id 3, a new id 6, and id 7 arriving late with the cursor already saved (05:00).
DAY2 = HEADER + "3,2024-01-02 09:00:00,30.00,v2-3\n6,2024-01-02 10:00:00,6.50,v1-6\n7,2024-01-01 05:00:00,7.50,v1-7\n"

V1 = [(i, f"v1-{i}") for i in range(1, 6)]
AFTER_DAY2 = [(3, "v2-3"), (6, "v1-6"), (7, "v1-7")]
LATEST = sorted([r for r in V1 if r[0] != 3] + AFTER_DAY2)
SYNC_MODES = {
    # mode: (sync spec, rows after run 1, rows after run 2 which reads day1.csv and day2.csv)
    "replace": ({"mode": "replace"}, V1, sorted(V1 + AFTER_DAY2)),
    # day1.csv, read again unchanged, is skipped by its content: appending never doubles a file's rows.
    "append": ({"mode": "append"}, V1, sorted(V1 + AFTER_DAY2)),
    "merge": ({"mode": "merge", "primary_key": ["id"]}, V1, LATEST),
    "incremental by key": ({"mode": "incremental", "cursor": "updated_at", "primary_key": ["id"]}, V1, LATEST),
    # Without a key, rows at the saved cursor that are already there (id 5) are not loaded twice.
    "incremental": ({"mode": "incremental", "cursor": "updated_at"}, V1, sorted(V1 + AFTER_DAY2)),
}


@dataclass
class Destination:
    connection: dict | None  # None: the warehouse
    read: Callable[[], list[tuple]]  # (id, note) of every row, sorted
    extra: dict  # more destination fields (format, ...)
    kinds: set[str]


def _columns() -> dict:
    return {
        "id": {"type": "bigint"},
        "updated_at": {"type": "timestamp"},
        "amount": {"type": "decimal(10,2)"},
        "note": {"type": "varchar"},
    }


def _read_files(location: FilesLocation, download_to: Path | None = None) -> list[tuple]:
    with duckdb.connect() as duck:
        relation = read_table(duck, location, "orders", "orders", download_to=download_to)
        return duck.execute(f"SELECT id, note FROM {relation} ORDER BY ALL").fetchall()


@pytest.fixture(params=["warehouse", "postgres", "local parquet", "s3 csv"])
def destination(request, etl_home, tmp_path) -> Destination:
    if request.param == "warehouse":
        return Destination(
            None, lambda: query(etl_home, "SELECT id, note FROM orders.orders ORDER BY ALL"), {}, {"duckdb"}
        )
    if request.param == "postgres":
        db = request.getfixturevalue("postgres_database")

        def read_pg():
            with psycopg2.connect(**db) as conn, conn.cursor() as cur:
                cur.execute("SELECT id, note FROM orders.orders ORDER BY id, note")
                return cur.fetchall()

        connection = {
            "kind": "postgres",
            "host": db["host"],
            "port": db["port"],
            "database": db["dbname"],
            "user": db["user"],
        }
        return Destination(connection, read_pg, {}, {"postgres"})
    if request.param == "local parquet":
        folder = tmp_path / "lake"
        return Destination(
            {"kind": "local", "path": str(folder)},
            lambda: _read_files(FilesLocation.local(folder)),
            {},
            {"parquet", "file"},
        )
    bucket = request.getfixturevalue("s3_bucket")
    options = bucket.options(prefix="lake")
    location = FilesLocation.s3(bucket.name, "lake", client_factory=lambda: bucket.client)
    return Destination(
        {"kind": "s3", **options},
        lambda: _read_files(location, tmp_path / "download"),
        {"format": "csv"},
        {"csv", "s3"},
    )


def pipeline_defs(spec: dict, destination: Destination) -> dg.Definitions:
    parsed = PipelineSpec.model_validate(spec)
    resources = {"warehouse": WarehouseResource()}
    kind = None
    if destination.connection is not None:
        options = dict(destination.connection)
        kind = options.pop("kind")
        resources[resource_key("out")] = as_resource(build("out", kind, options))
    ctx = PipelineContext(name="orders", names=table_names(parsed, "orders"), defined_at={}, destination_kind=kind)
    return dg.Definitions.merge(build_pipeline_defs(parsed, ctx), dg.Definitions(resources=resources))


def run(defs: dg.Definitions, instance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("orders_job").execute_in_process(instance=instance, raise_on_error=False)


@pytest.mark.parametrize("mode", list(SYNC_MODES))
def test_each_sync_mode_into_each_destination(mode, destination, landing, etl_home, instance):
    sync, after_first, after_second = SYNC_MODES[mode]
    spec = {
        "source": {"files": "orders/*.csv", "columns": _columns()},
        "sync": sync,
        "rules": [{"name": "amount not negative", "check": "amount >= 0"}],
        "destination": {
            "table": "orders",
            "connection": "warehouse" if destination.connection is None else "out",
            **destination.extra,
        },
    }
    defs = pipeline_defs(spec, destination)
    spec_of_table = defs.resolve_assets_def(dg.AssetKey(["orders", "orders"])).specs_by_key[
        dg.AssetKey(["orders", "orders"])
    ]
    assert set(spec_of_table.kinds) == destination.kinds

    (landing / "orders").mkdir()
    (landing / "orders" / "day1.csv").write_text(DAY1)
    first = run(defs, instance)
    assert first.success
    assert destination.read() == after_first
    meta = materializations(first)["orders/orders"]
    assert meta["rows_read"] == meta["rows_written"] == 5
    assert meta["dagster/row_count"] == len(after_first)
    assert [c.name for c in meta["dagster/column_schema"].columns][:4] == ["id", "updated_at", "amount", "note"]

    (landing / "orders" / "day2.csv").write_text(DAY2 + "8,2024-01-03 00:00:00,-1.00,negative\n")
    second = run(defs, instance)
    assert second.success
    assert destination.read() == after_second
    meta = materializations(second)["orders/orders"]
    # replace reads both files again; the other modes skip day1.csv, whose bytes are loaded already
    assert meta["rows_read"] == (9 if sync["mode"] == "replace" else 4) and meta["rows_rejected"] == 1
    assert meta["files_duplicate"] == (0 if sync["mode"] == "replace" else 1)
    assert meta["dagster/row_count"] == len(after_second)
    if sync["mode"] == "incremental":
        assert meta["cursor_before"].startswith("2024-01-01 05:00:00")
        assert meta["cursor_after"].startswith("2024-01-02 10:00:00")
    # Rejected rows go to the warehouse whatever the destination, with file and line.
    assert query(etl_home, "SELECT source_file, source_line, reasons FROM orders.orders_rejected") == [
        ("orders/day2.csv", 5, ["amount not negative"])
    ]


def test_a_destination_that_fails_keeps_nothing_of_the_load(landing, etl_home, instance, monkeypatch):
    """PostgreSQL refuses the connection: the run fails naming the table, without the password,
    and the warehouse keeps no rejected rows of a load that did not land."""
    monkeypatch.setenv("ORDERS_PG_PASSWORD", "canary-7f3a9c")
    unreachable = {
        "kind": "postgres",
        "host": "127.0.0.1",
        "port": 1,
        "database": "dwh",
        "user": "etl",
        "password": {"env": "ORDERS_PG_PASSWORD"},
        "connect_timeout_seconds": 2,
    }
    spec = {
        "source": {"files": "orders/*.csv", "columns": _columns()},
        "rules": [{"name": "amount not negative", "check": "amount >= 0"}],
        "destination": {"table": "orders", "connection": "out"},
        "retries": {"max_retries": 1, "delay_seconds": 0.1},
    }
    (landing / "orders").mkdir()
    (landing / "orders" / "day1.csv").write_text(DAY1 + "8,2024-01-03 00:00:00,-1.00,negative\n")
    result = run(pipeline_defs(spec, Destination(unreachable, list, {}, {"postgres"})), instance)
    assert not result.success and step_attempts(result) == 2
    message = failure_message(result)
    assert "PostgreSQL table orders.orders" in message and "canary-7f3a9c" not in message
    assert query(etl_home, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'orders'") == []
