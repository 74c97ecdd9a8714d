"""The DuckDB warehouse as a destination: commits in the warehouse transaction itself."""

from dataclasses import dataclass
from typing import Self

import duckdb

from etl_platform.destinations.base import WAREHOUSE
from etl_platform.destinations.registry import register
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.pipeline import SchemaChanges


@register
@dataclass(frozen=True)
class WarehouseTable:
    """A table of the DuckDB warehouse; the cursor in its ``_etl.state``."""

    table: warehouse_tables.TableRef
    two_phase = False
    connection_kinds = (WAREHOUSE,)
    writes_files = False

    @classmethod
    def declared(
        cls, connector, schema: str, table: str, *, file_format: str | None, partition_by: tuple[str, ...]
    ) -> "Self":
        return cls(warehouse_tables.TableRef(schema, table))

    @classmethod
    def asset_kinds(cls, connection_kind: str, file_format: str | None) -> set[str]:
        return {"duckdb"}

    def __str__(self) -> str:
        return f"warehouse table {self.table}"

    def state(self, duck: duckdb.DuckDBPyConnection, pipeline: str) -> warehouse_state.State:
        return warehouse_state.read_state(duck, pipeline)

    def saved_cursor(self, duck: duckdb.DuckDBPyConnection, pipeline: str) -> str | None:
        return warehouse_state.saved_cursor(duck, pipeline)

    def commit(
        self,
        duck: duckdb.DuckDBPyConnection,
        stage: warehouse_tables.TableRef,
        plan: warehouse_state.Plan,
        *,
        pipeline: str,
        run_id: str,
        data_columns: list[str],
        schema_changes: SchemaChanges,
    ) -> warehouse_tables.Committed:
        return warehouse_state.commit(
            duck,
            stage,
            self.table,
            plan,
            pipeline=pipeline,
            run_id=run_id,
            data_columns=data_columns,
            schema_changes=schema_changes,
        )

    def replace_slice(
        self,
        duck: duckdb.DuckDBPyConnection,
        stage: warehouse_tables.TableRef,
        part: warehouse_tables.Slice,
        *,
        pipeline: str,
        run_id: str,
        load_id: str,
        schema_changes: SchemaChanges,
    ) -> warehouse_tables.Committed:
        return warehouse_state.replace_slice(
            duck,
            stage,
            self.table,
            part,
            schema_changes=schema_changes,
            pipeline=pipeline,
            run_id=run_id,
            load_id=load_id,
        )

    def finish(self) -> None:
        pass

    def abandon(self) -> None:
        pass

    def committed_loads(self, duck: duckdb.DuckDBPyConnection, pipeline: str, load_ids: list[str]) -> set[str]:
        return set(load_ids)  # committed in the warehouse's own transaction

    def summary(self, duck: duckdb.DuckDBPyConnection) -> tuple[int, list[tuple[str, str]]]:
        if not warehouse_tables.table_exists(duck, self.table):
            return 0, []
        return warehouse_tables.scalar(
            duck, f"SELECT count(*) FROM {self.table.sql}"
        ) or 0, warehouse_tables.columns_of(duck, self.table)

    def reset_state(
        self, duck: duckdb.DuckDBPyConnection, pipeline: str, to: str | None
    ) -> tuple[str | None, str | None]:
        return warehouse_state.reset_state(duck, pipeline, to, table=self.table)

    def history(
        self, duck: duckdb.DuckDBPyConnection, pipeline: str, limit: int = 100
    ) -> list[warehouse_state.HistoryEntry]:
        return warehouse_state.history(duck, pipeline, limit)

    def cannot_hold(self, columns: dict[str, str]) -> list[tuple[str, str]]:
        return []
