"""The DuckDB warehouse, through dagster-duckdb's resource."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from etl_platform import settings

# Runs that write the warehouse share this Dagster concurrency pool; dagster.yaml gives it
# one slot, because a DuckDB file has a single writer.
WAREHOUSE_POOL = "duckdb_warehouse"


class WarehouseResource(DuckDBResource):
    """The DuckDB file every pipeline loads into and builds its transforms in."""

    database: str = Field(
        default="",
        description="Path of the DuckDB file. Empty: ETL_WAREHOUSE_PATH, else <ETL_HOME>/warehouse.duckdb.",
    )
    memory_limit: str = Field(
        default="1GB",
        description="DuckDB memory limit. Loads stream, so memory stays near this however large the input; larger work "
        "spills to disk.",
    )
    threads: int | None = Field(default=None, description="DuckDB worker threads; default: all cores.")

    @property
    def path(self) -> Path:
        return Path(self.database) if self.database else settings.warehouse_path()

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, object] = {"custom_user_agent": "etl_platform", "memory_limit": self.memory_limit}
        if self.threads:
            config["threads"] = self.threads
        config.update(self.connection_config)
        # Another process may hold the file for a moment (a CLI preview, a read-only client).
        con = _connect_waiting(str(self.path), config)
        try:
            # UTC: a saved cursor of a timestamptz column is text; it reads the same whatever the machine's zone.
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()


def _connect_waiting(
    database: str, config: dict, attempts: int = 11, first_delay: float = 0.1
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, waiting (0.1 s, doubling: about 100 s in all) while another
    process holds its file lock; the last attempt's error goes to the caller."""
    delay = first_delay
    for attempt in range(attempts):
        try:
            return duckdb.connect(database=database, config=config)
        except duckdb.IOException:
            if attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")
