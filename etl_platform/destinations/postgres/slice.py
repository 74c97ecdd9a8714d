"""One partition of a PostgreSQL table replaced: its rows deleted and the new ones inserted
in one transaction, after the same bulk copy into a staging table as any load
(see ``destinations.postgres``). Readers see the partition's old rows or its new ones."""

import duckdb
from psycopg2 import sql

from etl_platform.destinations.postgres.columns import _reconcile
from etl_platform.destinations.postgres.commit import ROWS_PER_BATCH, Prepared, prepare_staged
from etl_platform.destinations.postgres.state import _ensure_state_tables, _record_history
from etl_platform.destinations.postgres.transaction import Transaction
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.pipeline import SchemaChanges, SyncSpec


def _where(part: warehouse_tables.Slice, column_type: str) -> sql.Composable:
    column = sql.Identifier(part.column)
    if part.value is not None:
        return sql.SQL("{} = {}").format(column, sql.Literal(part.value))
    zoned = "with time zone" in column_type
    cast = sql.SQL("timestamptz" if zoned else "timestamp")
    start, end = part.bound_literals(zoned)
    return sql.SQL("{0} >= CAST({1} AS {3}) AND {0} < CAST({2} AS {3})").format(
        column, sql.Literal(start), sql.Literal(end), cast
    )


def _replace_in_transaction(
    tx: Transaction, columns, part: warehouse_tables.Slice, policy: SchemaChanges
) -> warehouse_tables.Committed:
    names = tx.names
    tx.run(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(names.schema)))
    existing = tx.existing_columns()
    found, kept, table = _reconcile(columns, existing, policy, str(names), keep_dropped=False)
    column_type = next((c.pg_type for c in table if c.name == part.column), None)
    if column_type is None:
        raise warehouse_tables.SchemaMismatch(
            f"the partition column {part.column!r} is not a column of {names}. Nothing was changed."
        )
    tx.ensure_target(existing, table, SyncSpec())
    if existing is None:  # every partition load deletes by this column
        tx.run(sql.SQL("CREATE INDEX ON {} ({})").format(names.target, sql.Identifier(part.column)))
    where = _where(part, column_type)
    outside = tx.run(sql.SQL("DELETE FROM {} WHERE ({}) IS NOT TRUE").format(names.staging, where))
    deleted = tx.run(sql.SQL("DELETE FROM {} WHERE {}").format(names.target, where))
    rows = tx.insert(names.target, kept, names.staging)
    tx.run(sql.SQL("DROP TABLE {}").format(names.staging))
    return warehouse_tables.Committed(rows_written=rows, drift=found, rows_deleted=deleted, rows_outside=outside)


def prepare_slice(
    duck: duckdb.DuckDBPyConnection,
    stage: warehouse_tables.TableRef,
    *,
    dsn: str,
    schema: str,
    table: str,
    part: warehouse_tables.Slice,
    schema_policy: SchemaChanges = "freeze",
    rows_per_batch: int = ROWS_PER_BATCH,
    pipeline: str | None = None,
    run_id: str = "",
    load_id: str | None = None,
) -> Prepared:
    """Replace the rows of ``part`` in PostgreSQL table ``schema.table`` with the staged rows
    of ``part`` in one open transaction (with a history entry naming the load id, when a pipeline
    is given); commit it with ``finish``. Staged rows outside the partition are left out. Schema
    policy as ``postgres.commit``.

    Raises PostgresDestinationError (driver errors, scrubbed) or warehouse_tables.SchemaMismatch;
    either way the table is as it was.
    """

    def apply(tx: Transaction, columns) -> warehouse_tables.Committed:
        committed = _replace_in_transaction(tx, columns, part, schema_policy)
        if pipeline is not None:
            _ensure_state_tables(tx.cur)
            _record_history(
                tx.cur,
                pipeline,
                str(tx.names),
                "load",
                run_id,
                load_id,
                None,
                None,
                committed.rows_written,
                committed.rows_deleted,
            )
        return committed

    return prepare_staged(
        duck, stage, dsn, schema, table, rows_per_batch, f"replacing partition {part.label} of", apply
    )


def replace_slice(
    duck: duckdb.DuckDBPyConnection, stage: warehouse_tables.TableRef, **options
) -> warehouse_tables.Committed:
    """``prepare_slice``, committed at once."""
    prepared = prepare_slice(duck, stage, **options)
    prepared.finish()
    return prepared.committed
