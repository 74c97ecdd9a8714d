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

from etl_platform.destinations.postgres.columns import (
    Column,
    PostgresDestinationError,
    _check_name,
    _definitions,
    _Names,
    _names,
    _reconcile,
    pg_column,
)
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as load
from etl_platform.failure_codes import with_codes
from etl_platform.secrets import references as secrets
from etl_platform.spec.pipeline import SchemaChanges, SyncSpec
from etl_platform.sql import qualified, quote

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


def _connect(dsn: str, failure: str, hidden: list[str]) -> PgConnection:
    """A psycopg2 connection with fixed settings; a driver error leaves as PostgresDestinationError, scrubbed."""
    connected = False
    try:
        pg = psycopg2.connect(dsn)
        connected = True
        with pg.cursor() as cur:
            # the cursor is saved as text: fixed settings spell it the same whatever the server's defaults
            cur.execute("SET TIME ZONE 'UTC'; SET DateStyle TO ISO, YMD")
        pg.commit()
        return pg
    except psycopg2.Error as err:
        failed = PostgresDestinationError(secrets.scrub(f"{failure}: {str(err).strip()}", extra=hidden))
        raise with_codes(failed, err, connected=connected) from None


@contextmanager
def _session(dsn: str, failure: str) -> Iterator[PgConnection]:
    """A psycopg2 connection; any driver error leaves as PostgresDestinationError, scrubbed, with its codes."""
    hidden = _secrets_in(dsn)
    pg = _connect(dsn, failure, hidden)
    connected = True  # a driver error without a code from here on is a connection that broke
    try:
        with closing(pg):
            yield pg
    except (psycopg2.Error, adbc_driver_manager.Error) as err:
        failed = PostgresDestinationError(secrets.scrub(f"{failure}: {str(err).strip()}", extra=hidden))
        raise with_codes(failed, err, connected=connected) from None


def _lock(pg: PgConnection, names: _Names) -> None:
    """Loads into one table take turns; the lock ends with the session, a killed one's too."""
    with pg.cursor() as cur:
        cur.execute(
            "SELECT pg_advisory_lock(hashtextextended(%s, 0))",
            [json.dumps(["etl_platform", names.schema, names.table])],
        )
    pg.commit()


def _copy_to_staging(
    duck: duckdb.DuckDBPyConnection,
    stage: load.TableRef,
    pg: PgConnection,
    dsn: str,
    names: _Names,
    columns: list[Column],
    rows_per_batch: int,
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
                        sql.SQL("ALTER COLUMN {0} TYPE {1} USING {0}::{1}").format(
                            sql.Identifier(c.name), sql.SQL(c.pg_type)
                        )
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
        return self.run(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(into, _names(kept), _names(kept), source)
        )

    def replace(self, existing: dict[str, str] | None, kept: list[Column], table: list[Column]) -> int:
        """Replace every row of the table with the staged rows, in place; the first load creates it.

        The table stays the same table: its OID, views on it, grants, indexes, comments,
        constraints, triggers, policies, owner, publications and partitions. A column the load
        lacks gets its default (NULL for the columns loads create). Readers see the old rows
        until the commit and the new rows after it, whatever their isolation level. The old
        rows stay behind as dead rows until the table is vacuumed.

        Raises PostgresDestinationError when row-level security, a rule or a trigger keeps the
        load from deleting every old row.
        """
        if existing is None:
            self.run(sql.SQL("CREATE TABLE {} ({})").format(self.names.target, _definitions(table)))
        else:
            self.refuse_row_security()
            self.ensure_target(existing, table, SyncSpec())  # adds the columns evolve lets in
            self.delete_every_row()
        return self.insert(self.names.target, kept, self.names.staging)

    def refuse_row_security(self) -> None:
        """A policy that applies to the loading role would hide old rows from the delete."""
        regclass = sql.Literal(qualified(self.names.schema, self.names.table))
        if self.value(sql.SQL("SELECT row_security_active({}::regclass)").format(regclass)):
            raise PostgresDestinationError(
                f"row-level security applies to the loading role on PostgreSQL table {self.names}, so a replace "
                "would delete only the rows its policies show; load as a role that bypasses them (the table's "
                "owner without FORCE ROW LEVEL SECURITY, or a role with BYPASSRLS). Nothing was changed."
            )

    def delete_every_row(self) -> None:
        # A deferrable foreign key into this table is checked at commit, against the new rows.
        self.run(sql.SQL("SET CONSTRAINTS ALL DEFERRED"))
        # DELETE, not TRUNCATE or a new table renamed into place: a transaction whose snapshot is
        # older than the commit would find either of those empty (TRUNCATE is not MVCC-safe).
        self.run(sql.SQL("DELETE FROM {}").format(self.names.target))
        # A rule or a BEFORE DELETE trigger may keep rows; one scan (about 1% of the load) finds them.
        if self.value(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(self.names.target)):
            raise PostgresDestinationError(
                f"rows of PostgreSQL table {self.names} are still there after the replace deleted them all "
                "(a rule or trigger on the table kept them), so the load would mix old and new rows. Nothing was "
                "changed."
            )

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

    def already_loaded(
        self, existing: dict[str, str], kept: list[Column], data_columns: list[str], cursor: str, bound: sql.Composable
    ) -> int:
        """Remove staged rows the table holds already, at or after ``bound``: without a key a row is
        a whole row, compared as a multiset (as ``warehouse_state.already_loaded``). Compared on the columns
        the loaded rows had: a column added just now is NULL in all of them; as text, which every
        type has (json has no equality)."""
        compared = [c.name for c in kept if c.name in data_columns and c.name in existing]
        if not compared:
            return 0
        as_text = sql.SQL(", ").join(sql.SQL("{0}::text AS {0}").format(sql.Identifier(c)) for c in compared)
        by = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in compared)
        same = sql.SQL(" AND ").join(
            sql.SQL("s.{0} IS NOT DISTINCT FROM t.{0}").format(sql.Identifier(c)) for c in compared
        )
        already = sql.Identifier("pg_temp", "__already")
        self.run(
            sql.SQL(
                "CREATE TEMP TABLE {already} ON COMMIT DROP AS SELECT s.{row} FROM "
                "(SELECT {row}, {as_text}, row_number() OVER (PARTITION BY {by} ORDER BY {row}) AS __n FROM {staging}) "
                "AS s "
                "JOIN (SELECT {as_text}, row_number() OVER (PARTITION BY {by}) AS __n FROM {target} WHERE {cursor} >= "
                "{bound}) AS t "
                "ON s.__n = t.__n AND {same}"
            ).format(
                already=already,
                row=sql.Identifier(ROW),
                as_text=as_text,
                by=by,
                staging=self.names.staging,
                target=self.names.target,
                cursor=sql.Identifier(cursor),
                bound=bound,
                same=same,
            )
        )
        removed = self.run(
            sql.SQL("DELETE FROM {} WHERE {} IN (SELECT {} FROM {})").format(
                self.names.staging, sql.Identifier(ROW), sql.Identifier(ROW), already
            )
        )
        self.run(sql.SQL("DROP TABLE {}").format(already))
        return removed

    def incremental(
        self,
        existing: dict[str, str] | None,
        kept: list[Column],
        plan: warehouse_state.Plan,
        *,
        data_columns: list[str],
    ) -> load.Committed:
        """Load rows at or after the plan's bound, as ``warehouse_state.incremental``: a rewind's rows replaced,
        rows loaded already left out, the new cursor the highest committed one."""
        sync = plan.sync
        cursor = sql.Identifier(sync.cursor)
        cursor_type = next(c.pg_type for c in kept if c.name == sync.cursor)

        def typed(value: str) -> sql.Composable:
            return sql.SQL("CAST({} AS {})").format(sql.Literal(value), sql.SQL(cursor_type))

        skipped = deleted = duplicates = 0
        if plan.bound is not None:
            skipped = self.run(
                sql.SQL("DELETE FROM {} WHERE {} < {}").format(self.names.staging, cursor, typed(plan.bound))
            )
        if plan.replace_from is not None and existing is not None:
            deleted = self.run(
                sql.SQL("DELETE FROM {} WHERE {} >= {}").format(self.names.target, cursor, typed(plan.replace_from))
            )
        elif not sync.primary_key and plan.bound is not None and existing is not None:
            duplicates = self.already_loaded(existing, kept, data_columns, sync.cursor, typed(plan.bound))
        rows = self.merge(kept, sync) if sync.primary_key else self.insert(self.names.target, kept, self.names.staging)
        # The table's cursor column is indexed: its maximum is one index lookup.
        after = self.value(sql.SQL("SELECT max({})::text FROM {}").format(cursor, self.names.target))
        after = after if after is not None else (plan.replace_from or plan.cursor_before)
        return load.Committed(
            rows, skipped, plan.cursor_before, after, rows_deleted=deleted, rows_already_loaded=duplicates
        )

    def commit(
        self,
        columns: list[Column],
        plan: warehouse_state.Plan,
        policy: SchemaChanges,
        *,
        pipeline: str,
        run_id: str,
        data_columns: list[str],
    ) -> load.Committed:
        sync = plan.sync
        self.run(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.names.schema)))
        existing = self.existing_columns()
        found, kept, table = _reconcile(columns, existing, policy, str(self.names), keep_dropped=plan.replaces_table)
        _check_sync_columns(kept, sync, self.names)
        if plan.replaces_table:
            committed = load.Committed(self.replace(existing, kept, table), cursor_before=plan.cursor_before)
            if sync.mode == "incremental":
                after = self.value(
                    sql.SQL("SELECT max({})::text FROM {}").format(sql.Identifier(sync.cursor), self.names.target)
                )
                committed = dataclasses.replace(committed, cursor_after=after)
        else:
            self.ensure_target(existing, table, sync)
            if sync.mode == "incremental":
                committed = self.incremental(existing, kept, plan, data_columns=data_columns)
            elif sync.mode == "merge":
                committed = load.Committed(self.merge(kept, sync))
            else:
                committed = load.Committed(self.insert(self.names.target, kept, self.names.staging))
        self.run(sql.SQL("DROP TABLE {}").format(self.names.staging))
        _ensure_state_tables(self.cur)
        if sync.mode == "incremental" or plan.full_refresh or plan.cursor_before is not None:
            _save_state(
                self.cur,
                pipeline,
                warehouse_state.State(committed.cursor_after if sync.mode == "incremental" else None),
                run_id,
            )
        _record_history(
            self.cur,
            pipeline,
            str(self.names),
            "load",
            run_id,
            plan.load_id,
            plan.cursor_before,
            committed.cursor_after,
            committed.rows_written,
            committed.rows_deleted,
        )
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


HISTORY = sql.Identifier(load.STATE_SCHEMA, warehouse_state.HISTORY_TABLE)


def _ensure_state_tables(cur: PgCursor) -> None:
    """The state and history tables in ``_etl``, made or brought up to date. Checked before any
    DDL: an ALTER would hold a lock on the state table until the load commits, so that loads of
    other pipelines into this database would wait for each other."""
    cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        [qualified(load.STATE_SCHEMA, load.STATE_TABLE)],
    )
    state_columns = {row[0] for row in cur.fetchall()}
    cur.execute("SELECT to_regclass(%s)", [qualified(load.STATE_SCHEMA, warehouse_state.HISTORY_TABLE)])
    has_history = cur.fetchone()[0] is not None
    if state_columns and "pending" in state_columns and has_history:
        return
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(load.STATE_SCHEMA)))
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


class Prepared:
    """A load applied in an open PostgreSQL transaction, holding the table's lock: ``finish``
    commits it, ``abandon`` rolls it back. Either closes the connection."""

    def __init__(self, pg: PgConnection, committed: load.Committed, failure: str, hidden: list[str]):
        self.pg, self.committed, self._failure, self._hidden = pg, committed, failure, hidden

    def finish(self) -> None:
        try:
            self.pg.commit()
        except psycopg2.Error as err:
            failed = PostgresDestinationError(secrets.scrub(f"{self._failure}: {str(err).strip()}", extra=self._hidden))
            raise with_codes(failed, err, connected=True) from None
        finally:
            self.pg.close()

    def abandon(self) -> None:
        try:
            self.pg.rollback()
        except psycopg2.Error:
            pass  # the connection is gone: the server rolled the transaction back already
        finally:
            self.pg.close()


def prepare(
    duck: duckdb.DuckDBPyConnection,
    stage: load.TableRef,
    *,
    dsn: str,
    schema: str,
    table: str,
    plan: warehouse_state.Plan,
    pipeline: str,
    run_id: str,
    data_columns: list[str],
    schema_policy: SchemaChanges = "freeze",
    rows_per_batch: int = ROWS_PER_BATCH,
) -> Prepared:
    """Apply the DuckDB ``stage`` to PostgreSQL table ``schema.table`` by ``plan`` in one open
    transaction, with the pipeline's state and a history entry naming the load id; commit it
    with ``finish``. Semantics as ``commit``."""
    if schema_policy not in ("freeze", "evolve", "discard"):
        raise ValueError(f"schema_policy must be freeze, evolve or discard, not {schema_policy!r}")

    def apply(tx: "_Transaction", columns: list[Column]) -> load.Committed:
        return tx.commit(columns, plan, schema_policy, pipeline=pipeline, run_id=run_id, data_columns=data_columns)

    return prepare_staged(duck, stage, dsn, schema, table, rows_per_batch, "loading into", apply)


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
    plan: warehouse_state.Plan | None = None,
) -> load.Committed:
    """Commit the DuckDB ``stage`` into PostgreSQL table ``schema.table`` by ``sync.mode``.

    ``dsn`` is a libpq connection string or URI, password included; it never appears in
    an error. ``schema_policy`` says what happens when the load's columns differ from the
    table's, as in the warehouse: ``freeze`` fails naming every difference; ``evolve``
    adds new columns (NULL in older rows); ``discard`` leaves new columns out. A column
    the load lacks is kept and NULL in new rows (a replace keeps it too); a changed type
    always fails. Leaves ``stage`` as it was. Without a ``plan``, the pipeline's state in this
    database says what the load does (a pending full refresh or rewind, the saved cursor).

    Raises PostgresDestinationError (driver errors, scrubbed) or load.SchemaMismatch;
    either way the table and its saved cursor are as they were.
    """
    if plan is None:
        plan = warehouse_state.plan_for(read_state(dsn, pipeline), sync, load_id=run_id)
    prepared = prepare(
        duck,
        stage,
        dsn=dsn,
        schema=schema,
        table=table,
        plan=plan,
        pipeline=pipeline,
        run_id=run_id,
        data_columns=data_columns,
        schema_policy=schema_policy,
        rows_per_batch=rows_per_batch,
    )
    prepared.finish()
    return prepared.committed


def prepare_staged(duck, stage, dsn: str, schema: str, table: str, rows_per_batch: int, doing: str, apply) -> Prepared:
    """The staged rows bulk-copied into a staging table beside ``schema.table`` (under the
    table's lock), then ``apply(transaction, columns)`` in one transaction left open. Every load's
    way in: a commit by sync mode, or a partition's replacement."""
    names = _Names(schema, table)
    columns = [pg_column(name, duckdb_type) for name, duckdb_type in load.columns_of(duck, stage)]
    for name in [schema, table, *(c.name for c in columns)]:
        _check_name(name)
    if ROW in {c.name for c in columns}:
        raise PostgresDestinationError(f"column name {ROW} is reserved for the load's row order")
    failure = f"{doing} PostgreSQL table {names} failed"
    hidden = _secrets_in(dsn)
    pg = _connect(dsn, failure, hidden)
    try:
        _lock(pg, names)
        _copy_to_staging(duck, stage, pg, dsn, names, columns, rows_per_batch)
        committed = apply(_Transaction(pg.cursor(), names), columns)
    except (psycopg2.Error, adbc_driver_manager.Error) as err:
        Prepared(pg, None, failure, hidden).abandon()
        failed = PostgresDestinationError(secrets.scrub(f"{failure}: {str(err).strip()}", extra=hidden))
        raise with_codes(failed, err, connected=True) from None
    except BaseException:
        Prepared(pg, None, failure, hidden).abandon()
        raise
    return Prepared(pg, committed, failure, hidden)


def read_state(dsn: str, pipeline: str, table: str | None = None) -> warehouse_state.State:
    """The pipeline's state in this database (none yet: an empty state; nothing is created)."""
    where = f" for PostgreSQL table {table}" if table else ""
    with _session(dsn, f"reading the cursor of pipeline {pipeline!r}{where} failed") as pg, pg, pg.cursor() as cur:
        cur.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            [qualified(load.STATE_SCHEMA, load.STATE_TABLE)],
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
        cur.execute("SELECT to_regclass(%s)", [qualified(load.STATE_SCHEMA, warehouse_state.HISTORY_TABLE)])
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
        cur.execute("SELECT to_regclass(%s)", [qualified(load.STATE_SCHEMA, warehouse_state.HISTORY_TABLE)])
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
