"""Rejected rows: list them, export them for people to fix, and replay them after a fix.

A replay runs the pipeline's *current* mapping and rules over the rows in its rejected
table and, in one warehouse transaction, commits the rows that now pass by the pipeline's
sync mode and removes them from the rejected table; rows that still fail stay, with their
file and line and their reasons as of now. So accepted + rejected = input holds before and
after, and replaying twice adds nothing twice.

What is replayed: rows rejected by a rule or a value that did not convert (kind 'rule'),
whose record holds the row's values. A line that could not be parsed or a file rejected
whole has no values to replay: fix the file and drop it back into the landing folder,
where the next run loads it like any other.

Which rows, by sync mode: replace replays the rejections of the latest load only (older
loads' rows were replaced since) and adds the rows to the table; append adds them; merge
upserts them by primary key; incremental merges them by primary key when it has one, else
appends them, and never moves the saved cursor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from etl_platform.sql import literal, quote

if TYPE_CHECKING:  # the CLI imports this module on every start: DuckDB and the spec only when used
    import duckdb

    from etl_platform.destinations.base import Destination
    from etl_platform.destinations.warehouse.tables import TableRef
    from etl_platform.spec.columns import ColumnSpec
    from etl_platform.spec.pipeline import PipelineSpec, SyncSpec


_INPUT = "__replay_input"
_PASSED = "__replay_passed"
_ROW = "__rejected_row"
# A record holds the text as read when a value did not convert (its reasons say which),
# else the row's typed values under the target names.
_CAST_REASON = "%: not a valid %"


@dataclass(frozen=True)
class Replayed:
    candidates: int  # rejected rows looked at
    accepted: int  # now pass: committed and removed from the rejected table
    still_rejected: int
    rows_written: int


def _latest_run(con: duckdb.DuckDBPyConnection, rejected: TableRef) -> str | None:
    from etl_platform.destinations.warehouse import tables as warehouse_tables

    return warehouse_tables.scalar(con, f"SELECT run_id FROM {rejected.sql} ORDER BY rejected_at DESC LIMIT 1")


def candidates_filter(con: duckdb.DuckDBPyConnection, spec: PipelineSpec, rejected: TableRef, where: str | None) -> str:
    """SQL condition on the rejected table selecting the rows a replay retries."""
    conditions = ["kind = 'rule'", "record IS NOT NULL"]
    if spec.sync.mode == "replace":
        latest = _latest_run(con, rejected)
        conditions.append(f"run_id = {literal(latest or '')}")
    if where:
        conditions.append(f"({where})")
    return " AND ".join(conditions)


def _replay_sync(spec: PipelineSpec) -> SyncSpec:
    from etl_platform.spec.pipeline import SyncSpec

    sync = spec.sync
    if sync.mode == "merge" or (sync.mode == "incremental" and sync.primary_key):
        return SyncSpec(mode="merge", primary_key=list(sync.primary_key))
    return SyncSpec(mode="append")


def _typed_columns(spec: PipelineSpec) -> dict[str, ColumnSpec]:
    """The mapping for records of typed values: read by target name, cast to the target type."""
    from etl_platform.spec.columns import ColumnSpec

    return {name: ColumnSpec(type=col.type) for name, col in spec.source.columns.items()}


def _stage_select(columns: dict[str, ColumnSpec], raw: bool, run_id: str, lineage: bool) -> str:
    """Rows of one record shape as stage rows: values pulled from the JSON record, then
    mapped and cast by the stage's own SQL, cast failures and all."""
    from etl_platform.steps import stage

    sources = dict.fromkeys(c for name, col in columns.items() for c in col.source_columns(name))
    pulled = ", ".join(f"__record ->> {literal(c)} AS {quote(c)}" for c in sources)
    keep = {"_source_file": "__file", "_load_id": literal(run_id)} if lineage else {}
    scan = f"(SELECT {pulled}, __file, {_ROW} FROM {_INPUT} WHERE {'' if raw else 'NOT '}__raw)"
    return stage.mapping_query(columns, scan, lineage={}, keep={**keep, _ROW: _ROW})


def replay(
    con: duckdb.DuckDBPyConnection,
    spec: PipelineSpec,
    *,
    pipeline: str,
    table: TableRef,
    rejected: TableRef,
    run_id: str,
    where: str | None = None,
    destination: Destination | None = None,
) -> Replayed:
    """Replay the rejected rows of one pipeline (see the module's docstring); all or nothing."""
    from etl_platform.destinations.warehouse import state as warehouse_state
    from etl_platform.destinations.warehouse import tables as warehouse_tables
    from etl_platform.destinations.warehouse.destination import WarehouseTable
    from etl_platform.destinations.warehouse.tables import TableRef
    from etl_platform.steps import stage

    if not warehouse_tables.table_exists(con, rejected):
        return Replayed(0, 0, 0, 0)
    committer = destination or WarehouseTable(table)
    if committer.two_phase:
        settle_replays(con, committer, pipeline, rejected)  # a replay interrupted between its two commits
    stage_ref = TableRef(table.schema, f"__stage_{table.name}")
    condition = candidates_filter(con, spec, rejected, where)
    columns = spec.source.columns
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {_INPUT} AS
            SELECT rowid AS {_ROW}, source_file AS __file, record::JSON AS __record,
                   len(list_filter(reasons, lambda r: r LIKE {literal(_CAST_REASON)})) > 0 AS __raw
            FROM {rejected.sql} WHERE {condition}"""
        )
        candidates = warehouse_tables.scalar(con, f"SELECT count(*) FROM {_INPUT}") or 0
        stage_columns = stage.stage_columns(spec, with_cast_errors=True) + [(_ROW, "BIGINT")]
        con.execute(f"DROP TABLE IF EXISTS {stage_ref.sql}")
        con.execute(f"CREATE TABLE {stage_ref.sql} ({', '.join(f'{quote(n)} {t}' for n, t in stage_columns)})")
        for sql in stage.macros(columns):
            con.execute(sql)
        lineage = spec.destination.lineage_columns
        for raw, mapping in ((True, columns), (False, _typed_columns(spec))):
            con.execute(f"INSERT INTO {stage_ref.sql} BY NAME {_stage_select(mapping, raw, run_id, lineage)}")
        rules = stage.compile_rules(spec)
        fails = stage.any_fails(rules, with_cast_errors=True)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_PASSED} AS SELECT {_ROW} FROM {stage_ref.sql} WHERE NOT ({fails})")
        accepted = warehouse_tables.scalar(con, f"SELECT count(*) FROM {_PASSED}") or 0
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __replay_failing AS SELECT {_ROW}, "
            f"{stage.reasons(rules, with_cast_errors=True)} AS reasons "
            f"FROM {stage_ref.sql} WHERE {fails}"
        )
        con.execute(f"DELETE FROM {stage_ref.sql} WHERE {fails}")
        for column in (stage.CAST_ERRORS, stage.RAW_RECORD, _ROW):
            con.execute(f"ALTER TABLE {stage_ref.sql} DROP COLUMN {quote(column)}")
        written = 0
        if accepted:
            plan = warehouse_state.Plan(_replay_sync(spec), load_id=run_id)
            committed = committer.commit(
                con,
                stage_ref,
                plan,
                pipeline=pipeline,
                run_id=run_id,
                data_columns=list(columns),
                schema_changes=spec.destination.schema_changes,
            )
            written = committed.rows_written
        if committer.two_phase and accepted:
            # The rows leave the rejected table only once the destination has committed them.
            _mark_replayed(con, rejected, run_id)
        else:
            con.execute(f"DELETE FROM {rejected.sql} WHERE rowid IN (SELECT {_ROW} FROM {_PASSED})")
        # Last: updating a list column moves rows, and with them their rowid.
        con.execute(
            f"UPDATE {rejected.sql} SET reasons = f.reasons FROM __replay_failing f "
            f"WHERE {rejected.sql}.rowid = f.{_ROW} AND {rejected.sql}.reasons <> f.reasons"
        )
        con.execute(f"DROP TABLE {stage_ref.sql}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        committer.abandon()
        raise
    if committer.two_phase and accepted:
        committer.finish()
        settle_replays(con, committer, pipeline, rejected)
    return Replayed(candidates, accepted, candidates - accepted, written)


# A replay into another database or a file table: the rows it loaded are named in the warehouse
# (by their identity in the rejected table) before the destination commits, and removed from the
# rejected table after; a crash in between is settled by the next replay from the load id the
# destination recorded. Nothing is lost, nothing loaded twice.
_REPLAYED = "_etl.pending_replays"
_IDENTITY = ("run_id", "source_file", "source_line", "record", "rejected_at")


def _mark_replayed(con: duckdb.DuckDBPyConnection, rejected: TableRef, load_id: str) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {_REPLAYED} (load_id VARCHAR, rejected_table VARCHAR, run_id VARCHAR, source_file "
        "VARCHAR, "
        "source_line BIGINT, record VARCHAR, rejected_at TIMESTAMPTZ)"
    )
    con.execute(
        f"INSERT INTO {_REPLAYED} SELECT ?, ?, {', '.join(_IDENTITY)} FROM {rejected.sql} "
        f"WHERE rowid IN (SELECT {_ROW} FROM {_PASSED})",
        [load_id, str(rejected)],
    )


def settle_replays(con: duckdb.DuckDBPyConnection, committer: Destination, pipeline: str, rejected: TableRef) -> None:
    """Remove from the rejected table the rows of replays the destination committed; forget the
    replays it did not (their rows stay rejected)."""
    from etl_platform.destinations.warehouse import tables as warehouse_tables

    if not warehouse_tables.table_exists(con, warehouse_tables.TableRef("_etl", "pending_replays")):
        return
    pending = [
        row[0]
        for row in con.execute(
            f"SELECT DISTINCT load_id FROM {_REPLAYED} WHERE rejected_table = ?", [str(rejected)]
        ).fetchall()
    ]
    if not pending:
        return
    done = committer.committed_loads(con, pipeline, pending)
    same = " AND ".join(f"r.{c} IS NOT DISTINCT FROM p.{c}" for c in _IDENTITY)
    con.execute("BEGIN TRANSACTION")
    try:
        for load_id in pending:
            if load_id in done:
                con.execute(
                    f"DELETE FROM {rejected.sql} AS r WHERE EXISTS (SELECT 1 FROM {_REPLAYED} p WHERE p.load_id = ? "
                    f"AND {same})",
                    [load_id],
                )
            con.execute(f"DELETE FROM {_REPLAYED} WHERE load_id = ?", [load_id])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
