"""A PostgreSQL table as a destination, committed in two steps around the warehouse transaction."""

from dataclasses import dataclass, field
from typing import Self

import duckdb

from etl_platform.destinations.base import PendingCommit
from etl_platform.destinations.registry import register
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.pipeline import SchemaChanges


@register
@dataclass(frozen=True)
class PostgresTable:
    """A table in a PostgreSQL database; the cursor in that database's ``_etl.state``."""

    connector: "PostgresConnector"  # noqa: F821
    schema: str
    table: str
    pending: PendingCommit = field(default_factory=PendingCommit, compare=False, repr=False)
    two_phase = True
    connection_kinds = ("postgres",)
    writes_files = False

    @classmethod
    def declared(
        cls, connector, schema: str, table: str, *, file_format: str | None, partition_by: tuple[str, ...]
    ) -> "Self":
        return cls(connector, schema, table)

    @classmethod
    def asset_kinds(cls, connection_kind: str, file_format: str | None) -> set[str]:
        return {"postgres"}

    def __str__(self) -> str:
        return f"PostgreSQL table {self.schema}.{self.table} of connection {self.connector.name}"

    def state(self, duck: duckdb.DuckDBPyConnection, pipeline: str) -> warehouse_state.State:
        from etl_platform.destinations.postgres import state as postgres_state

        return postgres_state.read_state(self.connector.uri(), pipeline, f"{self.schema}.{self.table}")

    def saved_cursor(self, duck: duckdb.DuckDBPyConnection, pipeline: str) -> str | None:
        return self.state(duck, pipeline).cursor

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
        from etl_platform.destinations.postgres import commit as postgres

        prepared = postgres.prepare(
            duck,
            stage,
            dsn=self.connector.uri(),
            schema=self.schema,
            table=self.table,
            plan=plan,
            pipeline=pipeline,
            run_id=run_id,
            data_columns=data_columns,
            schema_policy=schema_changes,
        )
        self.pending.hold(prepared)
        return prepared.committed

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
        from etl_platform.destinations.postgres import slice as postgres_slice

        prepared = postgres_slice.prepare_slice(
            duck,
            stage,
            dsn=self.connector.uri(),
            schema=self.schema,
            table=self.table,
            part=part,
            schema_policy=schema_changes,
            pipeline=pipeline,
            run_id=run_id,
            load_id=load_id,
        )
        self.pending.hold(prepared)
        return prepared.committed

    def finish(self) -> None:
        prepared = self.pending.take()
        if prepared is not None:
            prepared.finish()

    def abandon(self) -> None:
        prepared = self.pending.take()
        if prepared is not None:
            prepared.abandon()

    def committed_loads(self, duck: duckdb.DuckDBPyConnection, pipeline: str, load_ids: list[str]) -> set[str]:
        from etl_platform.destinations.postgres import state as postgres_state

        return postgres_state.committed_loads(self.connector.uri(), load_ids)

    def summary(self, duck: duckdb.DuckDBPyConnection) -> tuple[int, list[tuple[str, str]]]:
        from etl_platform.destinations.postgres import state as postgres_state

        return postgres_state.table_summary(self.connector.uri(), self.schema, self.table)

    def reset_state(
        self, duck: duckdb.DuckDBPyConnection, pipeline: str, to: str | None
    ) -> tuple[str | None, str | None]:
        from etl_platform.destinations.postgres import state as postgres_state

        return postgres_state.reset_state(self.connector.uri(), pipeline, to, table=f"{self.schema}.{self.table}")

    def history(
        self, duck: duckdb.DuckDBPyConnection, pipeline: str, limit: int = 100
    ) -> list[warehouse_state.HistoryEntry]:
        from etl_platform.destinations.postgres import state as postgres_state

        return postgres_state.history(self.connector.uri(), pipeline, limit)

    def cannot_hold(self, columns: dict[str, str]) -> list[tuple[str, str]]:
        return []  # PostgreSQL holds what the warehouse does; values it does not are rejected by casting
