"""A SQLite shop database as a partitioned pipeline's source, and ways to compare its rows."""

import hashlib
import sqlite3
from pathlib import Path

import dagster as dg
import psycopg2

from etl_platform.connectors.connections import as_resource, resource_key
from etl_platform.connectors.registry import build
from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform_tests.conftest import query

DAYS = ["2024-05-01", "2024-05-02", "2024-05-03", "2024-05-04"]
COLUMNS = {
    "id": {"type": "bigint"},
    "sold_at": {"type": "timestamp"},
    "store": {"type": "varchar"},
    "amount": {"type": "decimal(10,2)"},
}


def write_sales(path: Path, rows_per_day: int = 40, days=DAYS, first_id: int = 1) -> None:
    """Sales spread over the hours of each day, timestamps as SQLite keeps them: ISO text."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS sales (id INTEGER PRIMARY KEY, sold_at TEXT, store TEXT, amount REAL)")
        rows = [
            (
                first_id + d * rows_per_day + i,
                f"{day} {i % 24:02d}:{i % 60:02d}:00",
                f"store {i % 5}",
                round(1 + i * 1.25, 2),
            )
            for d, day in enumerate(days)
            for i in range(rows_per_day)
        ]
        db.executemany("INSERT INTO sales VALUES (?, ?, ?, ?)", rows)


def source_rows(path: Path, day: str | None = None) -> list[tuple]:
    with sqlite3.connect(path) as db:
        where, params = ("WHERE substr(sold_at, 1, 10) = ?", [day]) if day else ("", [])
        return [
            (i, sold_at, store, f"{amount:.2f}")
            for i, sold_at, store, amount in db.execute(f"SELECT id, sold_at, store, amount FROM sales {where}", params)
        ]


def fingerprint(rows: list[tuple]) -> tuple[int, str]:
    """Row count and an order-independent hash of the rows."""
    return len(rows), hashlib.sha256("\n".join(sorted(repr(r) for r in rows)).encode()).hexdigest()


def warehouse_rows(etl_home: Path, day: str | None = None) -> list[tuple]:
    where = f"WHERE sold_at::DATE = DATE '{day}'" if day else ""
    return query(
        etl_home,
        f"SELECT id, strftime(sold_at, '%Y-%m-%d %H:%M:%S'), store, amount::VARCHAR FROM shop.sales {where}",
    )


def postgres_rows(db: dict, day: str | None = None) -> list[tuple]:
    where = f"WHERE sold_at::date = DATE '{day}'" if day else ""
    with psycopg2.connect(**db) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT id, to_char(sold_at, 'YYYY-MM-DD HH24:MI:SS'), store, amount::text FROM shop.sales {where}"
        )
        return cur.fetchall()


def pipeline_defs(spec: dict, sqlite_path: Path, postgres: dict | None = None, name: str = "shop") -> dg.Definitions:
    """One pipeline reading ``sales`` from the SQLite file, into the warehouse or PostgreSQL."""
    parsed = PipelineSpec.model_validate(spec)
    source = build("src", "sqlite", {"path": str(sqlite_path)})
    resources = {"warehouse": WarehouseResource(), resource_key("src"): as_resource(source)}
    destination_kind = None
    if postgres is not None:
        out = build(
            "out",
            "postgres",
            {
                "host": postgres["host"],
                "port": postgres["port"],
                "database": postgres["dbname"],
                "user": postgres["user"],
            },
        )
        resources[resource_key("out")] = as_resource(out)
        destination_kind = "postgres"
    ctx = PipelineContext(
        name=name,
        names=table_names(parsed, name),
        defined_at={},
        connection_kind="sqlite",
        destination_kind=destination_kind,
    )
    return dg.Definitions.merge(build_pipeline_defs(parsed, ctx), dg.Definitions(resources=resources))


def daily_spec(postgres: bool = False, **partitions) -> dict:
    return {
        "source": {"connection": "src", "table": "sales", "columns": COLUMNS},
        "destination": {"table": "sales", "lineage_columns": False, **({"connection": "out"} if postgres else {})},
        "partitions": {"by": "daily", "start": "2024-05-01", "column": "sold_at", **partitions},
    }
