"""The DuckDB warehouse as a destination: commits in the warehouse transaction itself."""

from dataclasses import dataclass

from etl_platform.destinations.base import WAREHOUSE
from etl_platform.destinations.registry import register
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as load


@register
@dataclass(frozen=True)
class WarehouseTable:
    """A table of the DuckDB warehouse; the cursor in its ``_etl.state``."""

    table: load.TableRef
    two_phase = False
    connection_kinds = (WAREHOUSE,)
    writes_files = False

    @classmethod
    def declared(cls, connector, schema, table, *, file_format, partition_by):
        return cls(load.TableRef(schema, table))

    @classmethod
    def asset_kinds(cls, connection_kind, file_format):
        return {"duckdb"}

    def __str__(self) -> str:
        return f"warehouse table {self.table}"

    def state(self, duck, pipeline):
        return warehouse_state.read_state(duck, pipeline)

    def saved_cursor(self, duck, pipeline):
        return warehouse_state.saved_cursor(duck, pipeline)

    def commit(self, duck, stage, plan, *, pipeline, run_id, data_columns, schema_changes):
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

    def replace_slice(self, duck, stage, part, *, pipeline, run_id, load_id, schema_changes):
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

    def finish(self):
        pass

    def abandon(self):
        pass

    def committed_loads(self, duck, pipeline, load_ids):
        return set(load_ids)  # committed in the warehouse's own transaction

    def summary(self, duck):
        if not load.table_exists(duck, self.table):
            return 0, []
        return load.scalar(duck, f"SELECT count(*) FROM {self.table.sql}") or 0, load.columns_of(duck, self.table)

    def reset_state(self, duck, pipeline, to):
        return warehouse_state.reset_state(duck, pipeline, to, table=self.table)

    def history(self, duck, pipeline, limit=100):
        return warehouse_state.history(duck, pipeline, limit)

    def cannot_hold(self, columns):
        return []
