"""Where a load goes (its destination, stage and partition) and its plan against what that holds."""

from dataclasses import dataclass

import duckdb

from etl_platform.destinations.base import Destination
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.destinations.warehouse.destination import WarehouseTable
from etl_platform.spec.pipeline import PipelineSpec


@dataclass(frozen=True)
class Target:
    """Where a load goes. ``table`` names the stage and the rows' place in the warehouse;
    ``destination`` commits them (default: the warehouse table itself)."""

    table: warehouse_tables.TableRef
    rejected: warehouse_tables.TableRef
    destination: Destination | None = None

    @property
    def part(self) -> warehouse_tables.Slice | None:
        """The partition a partition's load replaces (its destination is then partitions.runs.SliceOf);
        staged rows of other time partitions are left out of it."""
        return getattr(self.destination, "part", None)

    @property
    def stage(self) -> warehouse_tables.TableRef:
        return warehouse_tables.TableRef(self.table.schema, f"__stage_{self.table.name}")

    @property
    def committer(self) -> Destination:
        return self.destination or WarehouseTable(self.table)


def use_utc(con: duckdb.DuckDBPyConnection) -> None:
    """Values of one zone render and convert the same on every machine: a timestamptz read as text
    (into a date, a time, the saved cursor) is UTC, not the session's local time."""
    con.execute("SET TimeZone = 'UTC'")


def plan_of(
    con: duckdb.DuckDBPyConnection, spec: PipelineSpec, target: "Target", pipeline: str, run_id: str
) -> warehouse_state.Plan:
    """How this load combines with what the destination holds: its state (a pending full refresh
    or rewind, the saved cursor) and the sync spec (the lookback below the cursor)."""
    import uuid

    sync = spec.sync
    state = target.committer.state(con, pipeline)
    column = spec.source.columns.get(sync.cursor or "")
    cursor_type = column.duckdb_type if column is not None else None

    def bound(cursor: str) -> str:
        return warehouse_state.lookback_bound(cursor, sync.lookback, cursor_type)

    return warehouse_state.plan_for(state, sync, load_id=f"{run_id}:{uuid.uuid4().hex[:12]}", lookback_bound=bound)
