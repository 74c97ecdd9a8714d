"""A pipeline's saved state in the warehouse: cursor, loaded files, history, and the plan of the next load."""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from etl_platform.destinations.warehouse.tables import (
    STATE_SCHEMA,
    STATE_TABLE,
    Committed,
    SchemaMismatch,
    Slice,
    TableRef,
    _count,
    _ensure_target,
    append,
    apply_schema_policy,
    columns_of,
    merge,
    replace,
    scalar,
    table_exists,
)
from etl_platform.spec.pipeline import SyncSpec
from etl_platform.sql import literal, qualified, quote

# What a destination keeps about a pipeline between loads, and how one load uses it.

FULL_REFRESH = "full_refresh"  # the next load replaces every row of the table (after `state reset`)
REWIND = "rewind"  # the next load replaces the rows from a cursor value on (after `state reset --to V`)
HISTORY_TABLE = "state_history"


@dataclass(frozen=True)
class State:
    """A pipeline's saved cursor, and what its next load must do differently, if anything."""

    cursor: str | None = None
    pending: str | None = None  # FULL_REFRESH, REWIND or None
    rewind_from: str | None = None  # with REWIND: the cursor value from which rows are replaced


@dataclass(frozen=True)
class Plan:
    """How one load combines with what its destination holds, decided before it reads.

    ``bound``: an incremental load skips staged rows below it (inclusive bound: the saved
    cursor, less the lookback). ``replace_from``: after a rewind, the table's rows with a cursor
    at or above it are replaced by the load's. ``full_refresh``: the load replaces every row.
    """

    sync: SyncSpec
    load_id: str
    cursor_before: str | None = None
    bound: str | None = None
    replace_from: str | None = None
    full_refresh: bool = False

    @property
    def replaces_table(self) -> bool:
        return self.sync.mode == "replace" or self.full_refresh


@dataclass(frozen=True)
class HistoryEntry:
    """One committed load, reset or rewind, as ``state history`` shows it."""

    at: str
    action: str  # "load", "reset" or "rewind"
    run_id: str | None
    load_id: str | None
    cursor_before: str | None
    cursor_after: str | None
    rows_written: int | None
    rows_deleted: int | None


def plan_for(
    state: State, sync: SyncSpec, *, load_id: str, lookback_bound: "Callable[[str], str] | None" = None
) -> Plan:
    """The plan of a load from the destination's state: a pending full refresh or rewind, else
    the sync mode as it is (an incremental load reading from the saved cursor, less the lookback)."""
    if state.pending == FULL_REFRESH:
        return Plan(sync, load_id, cursor_before=state.cursor, full_refresh=True)
    if state.pending == REWIND and sync.mode == "incremental":
        return Plan(sync, load_id, cursor_before=state.cursor, bound=state.rewind_from, replace_from=state.rewind_from)
    if sync.mode != "incremental" or state.cursor is None:
        return Plan(sync, load_id, cursor_before=state.cursor)
    bound = lookback_bound(state.cursor) if lookback_bound and sync.lookback is not None else state.cursor
    return Plan(sync, load_id, cursor_before=state.cursor, bound=bound)


def lookback_bound(cursor: str, lookback: str | int, cursor_type: str | None = None) -> str:
    """``cursor`` less ``lookback`` (a count of cursor units, or a duration such as '15 minutes'),
    as text of the cursor's type: the lower bound from which an incremental load reads again."""
    import duckdb as _duckdb

    con = _duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        kind = cursor_type or _cursor_type_of(cursor)
        if isinstance(lookback, int):
            return con.execute(f"SELECT (CAST(? AS {kind}) - ?)::VARCHAR", [cursor, lookback]).fetchall()[0][0]
        if kind == "DATE":  # a date less a duration: the day that instant falls on
            return con.execute(
                "SELECT CAST(CAST(? AS TIMESTAMP) - CAST(? AS INTERVAL) AS DATE)::VARCHAR", [cursor, lookback]
            ).fetchall()[0][0]
        return con.execute(f"SELECT (CAST(? AS {kind}) - CAST(? AS INTERVAL))::VARCHAR", [cursor, lookback]).fetchall()[
            0
        ][0]
    finally:
        con.close()


def _cursor_type_of(cursor: str) -> str:
    """The type a saved cursor's text has: a number, a date, a timestamp with or without offset."""
    import re

    if re.fullmatch(r"-?\d+", cursor):
        return "BIGINT"
    if re.fullmatch(r"-?\d+(\.\d+)?", cursor):
        return "DOUBLE"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", cursor):
        return "DATE"
    return "TIMESTAMPTZ" if re.search(r"([+-]\d{2}(:?\d{2})?|Z)$", cursor) else "TIMESTAMP"


def _ensure_state_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(STATE_SCHEMA)}")
    state = qualified(STATE_SCHEMA, STATE_TABLE)
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {state} ("
        "pipeline VARCHAR PRIMARY KEY, cursor_value VARCHAR, updated_at TIMESTAMPTZ, run_id VARCHAR, "
        "pending VARCHAR, rewind_from VARCHAR)"
    )
    if "pending" not in dict(columns_of(con, TableRef(STATE_SCHEMA, STATE_TABLE))):  # a warehouse from before rewinds
        con.execute(f"ALTER TABLE {state} ADD COLUMN pending VARCHAR")
        con.execute(f"ALTER TABLE {state} ADD COLUMN rewind_from VARCHAR")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {qualified(STATE_SCHEMA, HISTORY_TABLE)} ("
        "pipeline VARCHAR, table_name VARCHAR, recorded_at TIMESTAMPTZ, action VARCHAR, run_id VARCHAR, load_id "
        "VARCHAR, "
        "cursor_before VARCHAR, cursor_after VARCHAR, rows_written BIGINT, rows_deleted BIGINT)"
    )


def read_state(con: duckdb.DuckDBPyConnection, pipeline: str) -> State:
    _ensure_state_table(con)
    rows = con.execute(
        f"SELECT cursor_value, pending, rewind_from FROM {qualified(STATE_SCHEMA, STATE_TABLE)} WHERE pipeline = ?",
        [pipeline],
    ).fetchall()  # fetched to the end: the connection is free again
    return State(*rows[0]) if rows else State()


def saved_cursor(con: duckdb.DuckDBPyConnection, pipeline: str) -> str | None:
    return read_state(con, pipeline).cursor


def _save_state(con: duckdb.DuckDBPyConnection, pipeline: str, state: State, run_id: str) -> None:
    con.execute(
        f"INSERT OR REPLACE INTO {qualified(STATE_SCHEMA, STATE_TABLE)} VALUES (?, ?, now(), ?, ?, ?)",
        [pipeline, state.cursor, run_id, state.pending, state.rewind_from],
    )


def _record_history(
    con,
    pipeline: str,
    table: TableRef,
    action: str,
    run_id: str,
    load_id: str | None,
    before: str | None,
    after: str | None,
    written: int | None,
    deleted: int | None,
) -> None:
    con.execute(
        f"INSERT INTO {qualified(STATE_SCHEMA, HISTORY_TABLE)} VALUES (?, ?, now(), ?, ?, ?, ?, ?, ?, ?)",
        [pipeline, str(table), action, run_id, load_id, before, after, written, deleted],
    )


def history(con: duckdb.DuckDBPyConnection, pipeline: str, limit: int = 100) -> list[HistoryEntry]:
    """The pipeline's committed loads, resets and rewinds, newest first."""
    _ensure_state_table(con)
    rows = con.execute(
        "SELECT recorded_at::VARCHAR, action, run_id, load_id, cursor_before, cursor_after, rows_written, "
        "rows_deleted "
        f"FROM {qualified(STATE_SCHEMA, HISTORY_TABLE)} WHERE pipeline = ? ORDER BY recorded_at DESC LIMIT ?",
        [pipeline, limit],
    ).fetchall()
    return [HistoryEntry(*row) for row in rows]


def already_loaded(
    con: duckdb.DuckDBPyConnection,
    stage: str,
    existing: str,
    cursor: str,
    bound: str,
    cursor_type: str,
    compared: list[str],
) -> int:
    """Remove staged rows the table holds already: without a key, a row is a whole row, and the
    rows at or after ``bound`` are compared as multisets (two equal rows in the source are two
    rows; a third one is new). ``stage`` is a table, ``existing`` a table or a relation holding
    the destination's rows. Returns how many were removed."""
    if not compared:
        return 0
    cols = ", ".join(quote(c) for c in compared)
    same = " AND ".join(f"s.{quote(c)} IS NOT DISTINCT FROM t.{quote(c)}" for c in compared)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE __already AS SELECT s.__r FROM
        (SELECT rowid AS __r, {cols}, row_number() OVER (PARTITION BY {cols} ORDER BY rowid) AS __n FROM {stage}) AS s
        JOIN (SELECT {cols}, row_number() OVER (PARTITION BY {cols}) AS __n FROM {existing} AS e
              WHERE {quote(cursor)} >= CAST({literal(bound)} AS {cursor_type})) AS t
        ON s.__n = t.__n AND {same}"""
    )
    removed = _count(con, f"DELETE FROM {stage} WHERE rowid IN (SELECT __r FROM __already)")
    con.execute("DROP TABLE __already")
    return removed


def incremental(
    con: duckdb.DuckDBPyConnection,
    stage: TableRef,
    target: TableRef,
    plan: Plan,
    *,
    data_columns: list[str],
) -> Committed:
    """Load the staged rows at or after the plan's bound and work out the new cursor.

    Rows below the bound are skipped (counted). After a rewind, the table's rows from
    ``replace_from`` on are deleted first; otherwise, without a key, rows the table holds already
    (re-read at the bound, or within the lookback) are left out as a multiset. With a key the
    rows are merged. The new cursor is the highest committed one: the highest staged cursor, or
    the saved one when it is higher (a load that re-read only older rows).
    """
    sync = plan.sync
    assert sync.cursor
    cursor = quote(sync.cursor)
    cursor_type = dict(columns_of(con, stage))[sync.cursor]
    skipped = deleted = duplicates = 0
    exists = table_exists(con, target)
    if plan.bound is not None:
        bound = f"CAST({literal(plan.bound)} AS {cursor_type})"
        skipped = _count(con, f"DELETE FROM {stage.sql} WHERE {cursor} < {bound}")  # DELETE returns its count
    if plan.replace_from is not None and exists:
        deleted = _count(
            con, f"DELETE FROM {target.sql} WHERE {cursor} >= CAST({literal(plan.replace_from)} AS {cursor_type})"
        )
    elif not sync.primary_key and plan.bound is not None and exists:
        existing = dict(columns_of(con, target))
        compared = [c for c in data_columns if c in existing]
        duplicates = already_loaded(con, stage.sql, target.sql, sync.cursor, plan.bound, cursor_type, compared)
    # The staged rows are all at or after the bound, so the new cursor is their maximum (or the
    # saved one, if higher): read from the load, not from the whole table, whose scan grows with it.
    highest, params = f"max({cursor})", []
    if plan.cursor_before is not None and plan.replace_from is None:
        highest, params = f"greatest(CAST(? AS {cursor_type}), {highest})", [plan.cursor_before]
    after = scalar(con, f"SELECT {highest}::VARCHAR FROM {stage.sql}", params)
    committed = merge(con, stage, target, sync) if sync.primary_key else append(con, stage, target)
    after = after if after is not None else (plan.replace_from or plan.cursor_before)
    return Committed(
        committed.rows_written, skipped, plan.cursor_before, after, rows_deleted=deleted, rows_already_loaded=duplicates
    )


def commit(
    con: duckdb.DuckDBPyConnection,
    stage: TableRef,
    target: TableRef,
    plan: Plan,
    *,
    pipeline: str,
    run_id: str,
    data_columns: list[str],
    schema_changes: str = "freeze",
) -> Committed:
    """Commit the staged rows into the warehouse table by the plan, with the pipeline's state
    and a history entry, all in the caller's transaction."""
    sync = plan.sync
    _ensure_state_table(con)
    found = apply_schema_policy(con, stage, target, schema_changes, keep_dropped=plan.replaces_table)
    if plan.replaces_table:
        replaced = _count(con, f"SELECT count(*) FROM {target.sql}") if table_exists(con, target) else 0
        after = (
            scalar(con, f"SELECT max({quote(sync.cursor)})::VARCHAR FROM {stage.sql}")
            if sync.mode == "incremental"
            else None
        )
        committed = dataclasses.replace(
            replace(con, stage, target), rows_deleted=replaced, cursor_before=plan.cursor_before, cursor_after=after
        )
    elif sync.mode == "append":
        committed = append(con, stage, target)
    elif sync.mode == "merge":
        committed = merge(con, stage, target, sync)
    else:
        committed = incremental(con, stage, target, plan, data_columns=data_columns)
    if sync.mode == "incremental" or plan.full_refresh or plan.cursor_before is not None:
        _save_state(con, pipeline, State(committed.cursor_after if sync.mode == "incremental" else None), run_id)
    _record_history(
        con,
        pipeline,
        target,
        "load",
        run_id,
        plan.load_id,
        plan.cursor_before,
        committed.cursor_after,
        committed.rows_written,
        committed.rows_deleted,
    )
    return dataclasses.replace(committed, drift=found)


def reset_state(
    con: duckdb.DuckDBPyConnection, pipeline: str, to: str | None, *, table: TableRef | None = None
) -> tuple[str | None, str | None]:
    """Make the pipeline's next load a full refresh (``to`` None: it replaces every row of the
    table) or a rewind to ``to`` (it replaces the rows from that cursor value on), recorded in the
    history. Returns the cursor before and after."""
    before = read_state(con, pipeline)
    after = State(None, FULL_REFRESH) if to is None else State(to, REWIND, to)
    _save_state(con, pipeline, after, "reset")
    _record_history(
        con,
        pipeline,
        table or TableRef(pipeline, ""),
        "reset" if to is None else "rewind",
        None,
        None,
        before.cursor,
        after.cursor,
        None,
        None,
    )
    return before.cursor, to


def states(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str | None, str, str]]:
    """Every saved cursor: pipeline, cursor, when and by which run."""
    _ensure_state_table(con)
    return con.execute(
        f"SELECT pipeline, coalesce(cursor_value, CASE pending WHEN '{FULL_REFRESH}' THEN '(next load: full refresh)' "
        "END), "
        f"updated_at::VARCHAR, run_id FROM {qualified(STATE_SCHEMA, STATE_TABLE)} ORDER BY pipeline"
    ).fetchall()


def replace_slice(
    con: duckdb.DuckDBPyConnection,
    stage: TableRef,
    target: TableRef,
    part: Slice,
    *,
    schema_changes: str,
    pipeline: str | None = None,
    run_id: str = "",
    load_id: str | None = None,
) -> Committed:
    """Delete the slice's rows and insert the staged rows of the slice, in the caller's transaction.

    Staged rows outside the slice belong to other partitions and are left out (counted in
    ``rows_outside``), so a partition's load never touches another partition's rows.
    """
    found = apply_schema_policy(con, stage, target, schema_changes, keep_dropped=False)
    _ensure_target(con, stage, target)
    column_type = dict(columns_of(con, target)).get(part.column)
    if column_type is None:
        raise SchemaMismatch(
            f"the partition column {part.column!r} is not a column of table {target}. Nothing was changed."
        )
    where = part.where(column_type)
    outside = _count(con, f"DELETE FROM {stage.sql} WHERE ({where}) IS NOT TRUE")
    deleted = _count(con, f"DELETE FROM {target.sql} WHERE {where}")
    committed = append(con, stage, target)
    if pipeline is not None:
        _ensure_state_table(con)
        _record_history(con, pipeline, target, "load", run_id, load_id, None, None, committed.rows_written, deleted)
    return Committed(rows_written=committed.rows_written, drift=found, rows_deleted=deleted, rows_outside=outside)
