"""PostgreSQL as a destination: a staged load committed by sync mode, with its cursor.

Rows travel in two steps. A bulk copy moves them from the DuckDB stage into an
UNLOGGED staging table beside the target; nobody reads it, and the next load drops
whatever a crash left of it. Then one transaction checks the load's columns against
the target, applies the sync mode with the semantics of ``steps.load``, saves the
cursor in ``_etl.state`` and drops the staging table. A failure at any point, a
killed process included, leaves the target and its cursor as they were (ATOM, WM).
"""

import dataclasses
import json
from collections.abc import Iterator
from contextlib import closing, contextmanager
from urllib.parse import quote as url_quote

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import duckdb
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection
from psycopg2.extensions import cursor as PgCursor
from psycopg2.extensions import parse_dsn

from etl_platform import secrets
from etl_platform.automation.failure_codes import with_codes
from etl_platform.destinations.postgres_columns import (
    Column,
    PostgresDestinationError,
    _check_name,
    _definitions,
    _Names,
    _names,
    _reconcile,
    pg_column,
)
from etl_platform.spec import SchemaChanges, SyncSpec
from etl_platform.sql import qualified, quote
from etl_platform.steps import load


# The bulk copy is ADBC's ingest (binary COPY fed from Arrow batches). Measured on 1M
# rows of 8 columns (bigint, timestamp, 2 text, numeric(18,2), boolean, date, double)
# into an UNLOGGED table: ADBC 0.81-0.91 s, psycopg2 copy_expert with pyarrow CSV
# 2.51-2.72 s. Memory stays at one batch either way.
ROWS_PER_BATCH = 100_000
ROW = "__row"  # the stage row's DuckDB rowid: merge's "read last" tiebreak
STATE = sql.Identifier(load.STATE_SCHEMA, load.STATE_TABLE)


def _secrets_in(dsn: str) -> list[str]:
    try:
        password = parse_dsn(dsn).get("password")
    except psycopg2.Error:
        # libpq's parse error quotes the text around the fault, which may be the password
        raise PostgresDestinationError(
            "the PostgreSQL connection string is not valid (not shown: it may hold a password)"
        ) from None
    return [password, url_quote(password, safe="")] if password else []


@contextmanager
def _session(dsn: str, failure: str) -> Iterator[PgConnection]:
    """A psycopg2 connection; any driver error leaves as PostgresDestinationError, scrubbed, with its codes."""
    hidden = _secrets_in(dsn)
    connected = False
    try:
        with closing(psycopg2.connect(dsn)) as pg:
            connected = True  # a driver error without a code from here on is a connection that broke
            with pg.cursor() as cur:
                # the cursor is saved as text: fixed settings spell it the same whatever the server's defaults
                cur.execute("SET TIME ZONE 'UTC'; SET DateStyle TO ISO, YMD")
            pg.commit()
            yield pg
    except (psycopg2.Error, adbc_driver_manager.Error) as err:
        failed = PostgresDestinationError(secrets.scrub(f"{failure}: {str(err).strip()}", extra=hidden))
        raise with_codes(failed, err, connected=connected) from None


def _lock(pg: PgConnection, names: _Names) -> None:
    """Loads into one table take turns; the lock ends with the session, a killed one's too."""
    with pg.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [json.dumps(["etl_platform", names.schema, names.table])])
    pg.commit()


def _copy_to_staging(
    duck: duckdb.DuckDBPyConnection, stage: load.TableRef, pg: PgConnection, dsn: str, names: _Names,
    columns: list[Column], rows_per_batch: int,
) -> None:
    """Bulk-copy the DuckDB stage into a fresh UNLOGGED staging table, committed on its own."""
    with pg.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(names.schema)))
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(names.staging))
        cur.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} ({} bigint, {})").format(
                names.staging, sql.Identifier(ROW), _definitions(columns, staged=True)
            )
        )
    pg.commit()
    select = ", ".join(
        [f"rowid AS {quote(ROW)}"]
        + [f"CAST({quote(c.name)} AS {c.send_as}) AS {quote(c.name)}" if c.send_as else quote(c.name) for c in columns]
    )
    with closing(duck.sql(f"SELECT {select} FROM {stage.sql}").to_arrow_reader(rows_per_batch)) as batches:
        with closing(adbc.connect(dsn)) as bulk, closing(bulk.cursor()) as cur:
            cur.adbc_ingest(names.staging_name, batches, mode="append", db_schema_name=names.schema)
            bulk.commit()
    converted = [c for c in columns if c.send_as]
    if converted:
        with pg.cursor() as cur:
            cur.execute(
                sql.SQL("ALTER TABLE {} {}").format(
                    names.staging,
                    sql.SQL(", ").join(
                        sql.SQL("ALTER COLUMN {0} TYPE {1} USING {0}::{1}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
                        for c in converted
                    ),
                )
            )
        pg.commit()


class _Transaction:
    """The steps of the commit transaction, on one cursor."""

    def __init__(self, cur: PgCursor, names: _Names):
        self.cur, self.names = cur, names

    def run(self, statement: sql.Composable) -> int:
        # values go in as sql.Literal, never as %s: a name holding '%' would be read as a placeholder
        self.cur.execute(statement)
        return self.cur.rowcount

    def value(self, statement: sql.Composable):
        self.cur.execute(statement)
        row = self.cur.fetchone()
        return row[0] if row else None

    def existing_columns(self) -> dict[str, str] | None:
        """The target's columns and types, or None when there is no such table."""
        self.cur.execute(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
            [self.names.schema, self.names.table],
        )
        found = self.cur.fetchone()
        if found is None:
            return None
        self.cur.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [found[0]],
        )
        return dict(self.cur.fetchall())

    def insert(self, into: sql.Composable, kept: list[Column], source: sql.Composable) -> int:
        return self.run(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(into, _names(kept), _names(kept), source))

    def replace(self, kept: list[Column], table: list[Column]) -> int:
        """Build the new table aside and rename it over the old one: readers see one or the other."""
        self.run(sql.SQL("CREATE TABLE {} ({})").format(self.names.new, _definitions(table)))
        rows = self.insert(self.names.new, kept, self.names.staging)
        self.run(sql.SQL("DROP TABLE IF EXISTS {}").format(self.names.target))
        self.run(sql.SQL("ALTER TABLE {} RENAME TO {}").format(self.names.new, sql.Identifier(self.names.table)))
        return rows

    def ensure_target(self, existing: dict[str, str] | None, table: list[Column], sync: SyncSpec) -> None:
        """Create the target, indexed for its sync mode, or add the columns ``evolve`` let in."""
        if existing is None:
            self.run(sql.SQL("CREATE TABLE {} ({})").format(self.names.target, _definitions(table)))
            indexed = [sync.primary_key] if sync.primary_key and sync.mode != "append" else []
            if sync.mode == "incremental":
                indexed.append([sync.cursor])
            for keys in indexed:
                self.run(sql.SQL("CREATE INDEX ON {} ({})").format(self.names.target, _names(keys)))
            return
        for column in (c for c in table if c.name not in existing):  # older rows get NULL
            self.run(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    self.names.target, sql.Identifier(column.name), sql.SQL(column.pg_type)
                )
            )

    def merge(self, kept: list[Column], sync: SyncSpec) -> int:
        """Upsert by primary key; when a key appears more than once, the row with the highest
        cursor wins, then the one read last."""
        keys = _names(sync.primary_key)
        order = [keys]
        if sync.cursor:
            order.append(sql.SQL("{} DESC NULLS LAST").format(sql.Identifier(sync.cursor)))
        order.append(sql.SQL("{} DESC").format(sql.Identifier(ROW)))
        latest = sql.Identifier("pg_temp", "__latest")
        self.run(
            sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT DISTINCT ON ({}) {} FROM {} ORDER BY {}").format(
                latest, keys, _names(kept), self.names.staging, sql.SQL(", ").join(order)
            )
        )
        same_key = sql.SQL(" AND ").join(sql.SQL("t.{0} = l.{0}").format(sql.Identifier(k)) for k in sync.primary_key)
        self.run(sql.SQL("DELETE FROM {} AS t USING {} AS l WHERE {}").format(self.names.target, latest, same_key))
        return self.insert(self.names.target, kept, latest)

    def drop_loaded(
        self, existing: dict[str, str] | None, kept: list[Column], sync: SyncSpec, before: str, data_columns: list[str]
    ) -> int:
        """Drop staged rows below the saved cursor, and without a key the rows at the saved cursor
        that the table holds already. Returns how many were below the cursor."""
        cursor = sql.Identifier(sync.cursor)
        cursor_type = next(c.pg_type for c in kept if c.name == sync.cursor)
        bound = sql.SQL("CAST({} AS {})").format(sql.Literal(before), sql.SQL(cursor_type))
        skipped = self.run(sql.SQL("DELETE FROM {} WHERE {} < {}").format(self.names.staging, cursor, bound))
        if not sync.primary_key and existing is not None:
            # compared on the columns the loaded rows had: a column added just now is NULL in all of them
            compared = [c.name for c in kept if c.name in data_columns and c.name in existing]
            same_row = sql.SQL("").join(
                sql.SQL(" AND t.{0} IS NOT DISTINCT FROM s.{0}").format(sql.Identifier(c)) for c in compared
            )
            self.run(
                sql.SQL("DELETE FROM {} AS s WHERE EXISTS (SELECT 1 FROM {} AS t WHERE t.{} = {}{})").format(
                    self.names.staging, self.names.target, cursor, bound, same_row
                )
            )
        return skipped

    def incremental(
        self, existing: dict[str, str] | None, kept: list[Column], sync: SyncSpec, *, pipeline: str, run_id: str,
        data_columns: list[str],
    ) -> load.Committed:
        """Load rows at or after the saved cursor and save the new cursor, as ``load.incremental``."""
        _ensure_state_table(self.cur)
        before = self.value(
            sql.SQL("SELECT cursor_value FROM {} WHERE pipeline = {} FOR UPDATE").format(STATE, sql.Literal(pipeline))
        )
        skipped = 0 if before is None else self.drop_loaded(existing, kept, sync, before, data_columns)
        rows = self.merge(kept, sync) if sync.primary_key else self.insert(self.names.target, kept, self.names.staging)
        after = self.value(sql.SQL("SELECT max({})::text FROM {}").format(sql.Identifier(sync.cursor), self.names.target))
        after = after if after is not None else before
        _save_cursor(self.cur, pipeline, after, run_id)
        return load.Committed(rows, skipped, before, after)

    def commit(
        self, columns: list[Column], sync: SyncSpec, policy: SchemaChanges, *, pipeline: str, run_id: str, data_columns: list[str]
    ) -> load.Committed:
        self.run(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.names.schema)))
        existing = self.existing_columns()
        found, kept, table = _reconcile(columns, existing, policy, str(self.names), keep_dropped=sync.mode == "replace")
        _check_sync_columns(kept, sync, self.names)
        if sync.mode == "replace":
            committed = load.Committed(self.replace(kept, table))
        else:
            self.ensure_target(existing, table, sync)
            if sync.mode == "incremental":
                committed = self.incremental(existing, kept, sync, pipeline=pipeline, run_id=run_id, data_columns=data_columns)
            elif sync.mode == "merge":
                committed = load.Committed(self.merge(kept, sync))
            else:
                committed = load.Committed(self.insert(self.names.target, kept, self.names.staging))
        self.run(sql.SQL("DROP TABLE {}").format(self.names.staging))
        return dataclasses.replace(committed, drift=found)


def _check_sync_columns(kept: list[Column], sync: SyncSpec, names: _Names) -> None:
    needed = {
        "primary_key": sync.primary_key if sync.mode in ("merge", "incremental") else [],
        "cursor": [sync.cursor] if sync.mode == "incremental" else [],
    }
    written = {c.name for c in kept}
    for what, wanted in needed.items():
        lacking = [c for c in wanted if c not in written]
        if lacking:
            raise load.SchemaMismatch(
                f"{what} names {', '.join(lacking)}, not a column the load writes to {names}. Nothing was changed."
            )


def _ensure_state_table(cur: PgCursor) -> None:
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(load.STATE_SCHEMA)))
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (pipeline text PRIMARY KEY, cursor_value text, updated_at timestamptz, run_id text)"
        ).format(STATE)
    )


def _save_cursor(cur: PgCursor, pipeline: str, cursor: str | None, run_id: str | None) -> None:
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (pipeline, cursor_value, updated_at, run_id) VALUES (%s, %s, now(), %s) "
            "ON CONFLICT (pipeline) DO UPDATE SET cursor_value = EXCLUDED.cursor_value, "
            "updated_at = EXCLUDED.updated_at, run_id = EXCLUDED.run_id"
        ).format(STATE),
        [pipeline, cursor, run_id],
    )


def commit(
    duck: duckdb.DuckDBPyConnection,
    stage: load.TableRef,
    *,
    dsn: str,
    schema: str,
    table: str,
    sync: SyncSpec,
    pipeline: str,
    run_id: str,
    data_columns: list[str],
    schema_policy: SchemaChanges = "freeze",
    rows_per_batch: int = ROWS_PER_BATCH,
) -> load.Committed:
    """Commit the DuckDB ``stage`` into PostgreSQL table ``schema.table`` by ``sync.mode``.

    ``dsn`` is a libpq connection string or URI, password included; it never appears in
    an error. ``schema_policy`` says what happens when the load's columns differ from the
    table's, as in the warehouse: ``freeze`` fails naming every difference; ``evolve``
    adds new columns (NULL in older rows); ``discard`` leaves new columns out. A column
    the load lacks is kept and NULL in new rows (a replace keeps it too); a changed type
    always fails. Leaves ``stage`` as it was.

    Raises PostgresDestinationError (driver errors, scrubbed) or load.SchemaMismatch;
    either way the table and its saved cursor are as they were.
    """
    if schema_policy not in ("freeze", "evolve", "discard"):
        raise ValueError(f"schema_policy must be freeze, evolve or discard, not {schema_policy!r}")
    with staged_transaction(duck, stage, dsn, schema, table, rows_per_batch, "loading into") as (tx, columns):
        return tx.commit(columns, sync, schema_policy, pipeline=pipeline, run_id=run_id, data_columns=data_columns)


@contextmanager
def staged_transaction(
    duck: duckdb.DuckDBPyConnection, stage: load.TableRef, dsn: str, schema: str, table: str, rows_per_batch: int, doing: str
) -> Iterator[tuple["_Transaction", list]]:
    """The staged rows bulk-copied into a staging table beside ``schema.table`` (under the
    table's lock), then one open transaction on them and the staged columns. Every load's way
    in: a commit by sync mode, or a partition's replacement."""
    names = _Names(schema, table)
    columns = [pg_column(name, duckdb_type) for name, duckdb_type in load.columns_of(duck, stage)]
    for name in [schema, table, *(c.name for c in columns)]:
        _check_name(name)
    if ROW in {c.name for c in columns}:
        raise PostgresDestinationError(f"column name {ROW} is reserved for the load's row order")
    with _session(dsn, f"{doing} PostgreSQL table {names} failed") as pg:
        _lock(pg, names)
        _copy_to_staging(duck, stage, pg, dsn, names, columns, rows_per_batch)
        with pg, pg.cursor() as cur:
            yield _Transaction(cur, names), columns


def saved_cursor(dsn: str, pipeline: str) -> str | None:
    """The pipeline's saved cursor in this database, or None."""
    with _session(dsn, f"reading the cursor of pipeline {pipeline!r} failed") as pg, pg, pg.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", [qualified(load.STATE_SCHEMA, load.STATE_TABLE)])
        if cur.fetchone()[0] is None:
            return None
        cur.execute(sql.SQL("SELECT cursor_value FROM {} WHERE pipeline = %s").format(STATE), [pipeline])
        row = cur.fetchone()
        return row[0] if row else None


def reset_state(dsn: str, pipeline: str, to: str | None) -> tuple[str | None, str | None]:
    """Forget the pipeline's saved cursor (``to`` None: the next incremental load reads
    everything) or rewind it to ``to``. Returns the cursor before and after."""
    with _session(dsn, f"resetting the cursor of pipeline {pipeline!r} failed") as pg, pg, pg.cursor() as cur:
        _ensure_state_table(cur)
        cur.execute(sql.SQL("SELECT cursor_value FROM {} WHERE pipeline = %s FOR UPDATE").format(STATE), [pipeline])
        row = cur.fetchone()
        if to is None:
            cur.execute(sql.SQL("DELETE FROM {} WHERE pipeline = %s").format(STATE), [pipeline])
        else:
            _save_cursor(cur, pipeline, to, "reset")
        return (row[0] if row else None), to


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
