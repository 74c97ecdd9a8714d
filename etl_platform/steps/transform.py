"""SQL transforms: a SELECT materialized as a table, swapped in atomically."""

import time
from dataclasses import dataclass

import duckdb

from etl_platform.destinations.warehouse.tables import TableRef, columns_of
from etl_platform.sql import literal, qualified, quote


@dataclass(frozen=True)
class Built:
    rows: int
    columns: list[tuple[str, str]]
    seconds: float


def build(con: duckdb.DuckDBPyConnection, *, schema: str, name: str, sql: str) -> Built:
    """Run ``sql`` with the pipeline's schema first on the search path and replace table
    ``schema.name`` with the result in one transaction: readers never see it half built."""
    started = time.monotonic()
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    con.execute(f"SET search_path = {literal(schema + ',main')}")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE OR REPLACE TABLE {qualified(schema, name)} AS {sql.strip().rstrip(';')}")
        rows = con.execute(f"SELECT count(*) FROM {qualified(schema, name)}").fetchone()[0]
        columns = columns_of(con, TableRef(schema, name))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return Built(rows=rows, columns=columns, seconds=time.monotonic() - started)
