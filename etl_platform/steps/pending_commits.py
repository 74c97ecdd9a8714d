"""A load commits twice (the warehouse, then its destination); a load interrupted between the two
is settled by the next one, from the pending commits the warehouse records."""

import duckdb

from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.intake.fingerprints import undo_ledger
from etl_platform.sql import quote
from etl_platform.steps.load_target import Target
from etl_platform.steps.staging import Ingest

# Loads into another database or a file table commit twice: first the warehouse (rejected rows,
# ledger, and a marker naming the load), then the destination, whose commit records the load id.
PENDING = f"{warehouse_tables.STATE_SCHEMA}.pending_commits"


def _ensure_pending_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(warehouse_tables.STATE_SCHEMA)}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {PENDING} (pipeline VARCHAR, table_name VARCHAR, load_id VARCHAR, run_id VARCHAR, "
        "rejected_table VARCHAR, marked_at TIMESTAMPTZ)"
    )


def _mark_pending(con: duckdb.DuckDBPyConnection, ingest: Ingest) -> None:
    _ensure_pending_table(con)
    t = ingest.target
    con.execute(
        f"INSERT INTO {PENDING} VALUES (?, ?, ?, ?, ?, now())",
        [ingest.pipeline, str(t.table), ingest.plan.load_id, ingest.run_id, str(t.rejected)],
    )


def _clear_pending(con: duckdb.DuckDBPyConnection, load_id: str) -> None:
    con.execute(f"DELETE FROM {PENDING} WHERE load_id = ?", [load_id])


def recover(con: duckdb.DuckDBPyConnection, target: "Target", pipeline: str) -> int:
    """Settle loads of this table that were interrupted between the warehouse's commit and the
    destination's: the destination says which load ids it committed; the warehouse bookkeeping
    (rejected rows, ledger) of the others is undone. Returns how many were undone."""
    committer = target.committer
    if not committer.two_phase:
        return 0
    _ensure_pending_table(con)
    pending = con.execute(
        f"SELECT load_id, run_id, rejected_table FROM {PENDING} WHERE pipeline = ? AND table_name = ?",
        [pipeline, str(target.table)],
    ).fetchall()
    if not pending:
        return 0
    done = committer.committed_loads(con, pipeline, [load_id for load_id, _, _ in pending])
    undone = 0
    con.execute("BEGIN TRANSACTION")
    try:
        for load_id, run_id, _ in pending:
            if load_id not in done:
                if warehouse_tables.table_exists(con, target.rejected):
                    con.execute(f"DELETE FROM {target.rejected.sql} WHERE run_id = ?", [run_id])
                undo_ledger(con, pipeline, str(target.table), run_id)
                undone += 1
            _clear_pending(con, load_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return undone
