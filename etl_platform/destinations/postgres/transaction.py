"""The one PostgreSQL transaction that applies a staged load by sync mode and saves its cursor."""

import dataclasses

from psycopg2 import sql
from psycopg2.extensions import cursor as PgCursor

from etl_platform.destinations.postgres.columns import (
    Column,
    PostgresDestinationError,
    _definitions,
    _Names,
    _names,
    _reconcile,
)
from etl_platform.destinations.postgres.state import _ensure_state_tables, _record_history, _save_state
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.pipeline import SchemaChanges, SyncSpec
from etl_platform.sql import qualified

ROW = "__row"  # the stage row's DuckDB rowid: merge's "read last" tiebreak


class Transaction:
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
    ) -> warehouse_tables.Committed:
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
        return warehouse_tables.Committed(
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
    ) -> warehouse_tables.Committed:
        sync = plan.sync
        self.run(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.names.schema)))
        existing = self.existing_columns()
        found, kept, table = _reconcile(columns, existing, policy, str(self.names), keep_dropped=plan.replaces_table)
        _check_sync_columns(kept, sync, self.names)
        if plan.replaces_table:
            committed = warehouse_tables.Committed(
                self.replace(existing, kept, table), cursor_before=plan.cursor_before
            )
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
                committed = warehouse_tables.Committed(self.merge(kept, sync))
            else:
                committed = warehouse_tables.Committed(self.insert(self.names.target, kept, self.names.staging))
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
            raise warehouse_tables.SchemaMismatch(
                f"{what} names {', '.join(lacking)}, not a column the load writes to {names}. Nothing was changed."
            )
