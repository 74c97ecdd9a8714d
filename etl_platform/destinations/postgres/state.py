"""A pipeline's state kept in the PostgreSQL destination itself: cursor, history, committed loads."""

from psycopg2 import sql
from psycopg2.extensions import cursor as PgCursor

from etl_platform.destinations.postgres.columns import _Names
from etl_platform.destinations.postgres.connection import _session
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.sql import qualified

STATE = sql.Identifier(warehouse_tables.STATE_SCHEMA, warehouse_tables.STATE_TABLE)


HISTORY = sql.Identifier(warehouse_tables.STATE_SCHEMA, warehouse_state.HISTORY_TABLE)


def _ensure_state_tables(cur: PgCursor) -> None:
    """The state and history tables in ``_etl``, made or brought up to date. Checked before any
    DDL: an ALTER would hold a lock on the state table until the load commits, so that loads of
    other pipelines into this database would wait for each other."""
    cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        [qualified(warehouse_tables.STATE_SCHEMA, warehouse_tables.STATE_TABLE)],
    )
    state_columns = {row[0] for row in cur.fetchall()}
    cur.execute("SELECT to_regclass(%s)", [qualified(warehouse_tables.STATE_SCHEMA, warehouse_state.HISTORY_TABLE)])
    has_history = cur.fetchone()[0] is not None
    if state_columns and "pending" in state_columns and has_history:
        return
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(warehouse_tables.STATE_SCHEMA)))
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (pipeline text PRIMARY KEY, cursor_value text, updated_at timestamptz, "
            "run_id text, "
            "pending text, rewind_from text)"
        ).format(STATE)
    )
    if state_columns and "pending" not in state_columns:  # a database from before rewinds
        cur.execute(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS pending text, ADD COLUMN IF NOT EXISTS rewind_from text"
            ).format(STATE)
        )
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (pipeline text, table_name text, recorded_at timestamptz, action text, "
            "run_id text, "
            "load_id text, cursor_before text, cursor_after text, rows_written bigint, rows_deleted bigint)"
        ).format(HISTORY)
    )
    cur.execute(sql.SQL("CREATE INDEX IF NOT EXISTS state_history_load_id ON {} (load_id)").format(HISTORY))


def _save_state(cur: PgCursor, pipeline: str, state: warehouse_state.State, run_id: str | None) -> None:
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (pipeline, cursor_value, updated_at, run_id, pending, rewind_from) VALUES (%s, %s, now(), "
            "%s, %s, %s) "
            "ON CONFLICT (pipeline) DO UPDATE SET cursor_value = EXCLUDED.cursor_value, updated_at = "
            "EXCLUDED.updated_at, "
            "run_id = EXCLUDED.run_id, pending = EXCLUDED.pending, rewind_from = EXCLUDED.rewind_from"
        ).format(STATE),
        [pipeline, state.cursor, run_id, state.pending, state.rewind_from],
    )


def _record_history(
    cur: PgCursor,
    pipeline: str,
    table: str,
    action: str,
    run_id: str | None,
    load_id: str | None,
    before: str | None,
    after: str | None,
    written: int | None,
    deleted: int | None,
) -> None:
    cur.execute(
        sql.SQL("INSERT INTO {} VALUES (%s, %s, now(), %s, %s, %s, %s, %s, %s, %s)").format(HISTORY),
        [pipeline, table, action, run_id, load_id, before, after, written, deleted],
    )


def read_state(dsn: str, pipeline: str, table: str | None = None) -> warehouse_state.State:
    """The pipeline's state in this database (none yet: an empty state; nothing is created)."""
    where = f" for PostgreSQL table {table}" if table else ""
    with _session(dsn, f"reading the cursor of pipeline {pipeline!r}{where} failed") as pg, pg, pg.cursor() as cur:
        cur.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            [qualified(warehouse_tables.STATE_SCHEMA, warehouse_tables.STATE_TABLE)],
        )
        columns = {row[0] for row in cur.fetchall()}
        if not columns:
            return warehouse_state.State()
        extra = ", pending, rewind_from" if "pending" in columns else ", NULL, NULL"
        cur.execute(sql.SQL("SELECT cursor_value" + extra + " FROM {} WHERE pipeline = %s").format(STATE), [pipeline])
        row = cur.fetchone()
        return warehouse_state.State(*row) if row else warehouse_state.State()


def saved_cursor(dsn: str, pipeline: str) -> str | None:
    """The pipeline's saved cursor in this database, or None."""
    return read_state(dsn, pipeline).cursor


def reset_state(dsn: str, pipeline: str, to: str | None, *, table: str = "") -> tuple[str | None, str | None]:
    """Make the pipeline's next load a full refresh (``to`` None) or a rewind to ``to`` (it
    replaces the rows from that cursor value on), recorded in the history. Returns the cursor
    before and after."""
    with _session(dsn, f"resetting the cursor of pipeline {pipeline!r} failed") as pg, pg, pg.cursor() as cur:
        _ensure_state_tables(cur)
        cur.execute(sql.SQL("SELECT cursor_value FROM {} WHERE pipeline = %s FOR UPDATE").format(STATE), [pipeline])
        row = cur.fetchone()
        before = row[0] if row else None
        after = (
            warehouse_state.State(None, warehouse_state.FULL_REFRESH)
            if to is None
            else warehouse_state.State(to, warehouse_state.REWIND, to)
        )
        _save_state(cur, pipeline, after, "reset")
        _record_history(
            cur, pipeline, table, "reset" if to is None else "rewind", None, None, before, after.cursor, None, None
        )
        return before, to


def history(dsn: str, pipeline: str, limit: int = 100) -> list[warehouse_state.HistoryEntry]:
    """The pipeline's committed loads, resets and rewinds in this database, newest first."""
    with _session(dsn, f"reading the history of pipeline {pipeline!r} failed") as pg, pg, pg.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", [qualified(warehouse_tables.STATE_SCHEMA, warehouse_state.HISTORY_TABLE)])
        if cur.fetchone()[0] is None:
            return []
        cur.execute(
            sql.SQL(
                "SELECT recorded_at::text, action, run_id, load_id, cursor_before, cursor_after, rows_written, "
                "rows_deleted FROM {} "
                "WHERE pipeline = %s ORDER BY recorded_at DESC LIMIT %s"
            ).format(HISTORY),
            [pipeline, limit],
        )
        return [warehouse_state.HistoryEntry(*row) for row in cur.fetchall()]


def committed_loads(dsn: str, load_ids: list[str]) -> set[str]:
    """Which of ``load_ids`` this database committed (each commit records its load id)."""
    with _session(dsn, "reading the committed loads failed") as pg, pg, pg.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", [qualified(warehouse_tables.STATE_SCHEMA, warehouse_state.HISTORY_TABLE)])
        if cur.fetchone()[0] is None:
            return set()
        cur.execute(sql.SQL("SELECT load_id FROM {} WHERE load_id = ANY(%s)").format(HISTORY), [list(load_ids)])
        return {row[0] for row in cur.fetchall()}


def table_summary(dsn: str, schema: str, table: str) -> tuple[int, list[tuple[str, str]]]:
    """Row count and (column, type) of ``schema.table``; (0, []) when there is no such table."""
    names = _Names(schema, table)
    with _session(dsn, f"reading the size of PostgreSQL table {names} failed") as pg, pg, pg.cursor() as cur:
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [qualified(schema, table)],
        )
        columns = [(name, dtype) for name, dtype in cur.fetchall()]
        if not columns:
            return 0, []
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(names.target))
        return cur.fetchone()[0], columns
