"""PostgreSQL as a destination: a staged load committed by sync mode, with its cursor.

Rows travel in two steps. A bulk copy moves them from the DuckDB stage into an
UNLOGGED staging table beside the target; nobody reads it, and the next load drops
whatever a crash left of it. Then one transaction checks the load's columns against
the target, applies the sync mode with the semantics of ``steps.load``, saves the
cursor in ``_etl.state`` and drops the staging table. A failure at any point, a
killed process included, leaves the target and its cursor as they were (ATOM, WM)."""

from contextlib import closing

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import duckdb
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

from etl_platform.destinations.postgres.columns import (
    Column,
    PostgresDestinationError,
    _check_name,
    _definitions,
    _Names,
    pg_column,
)
from etl_platform.destinations.postgres.connection import _connect, _lock, _secrets_in
from etl_platform.destinations.postgres.state import read_state
from etl_platform.destinations.postgres.transaction import ROW, Transaction
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.failure_codes import with_codes
from etl_platform.secrets import references as secrets
from etl_platform.spec.pipeline import SchemaChanges, SyncSpec
from etl_platform.sql import quote

# The bulk copy is ADBC's ingest (binary COPY fed from Arrow batches). Measured on 1M
# rows of 8 columns (bigint, timestamp, 2 text, numeric(18,2), boolean, date, double)
# into an UNLOGGED table: ADBC 0.81-0.91 s, psycopg2 copy_expert with pyarrow CSV
# 2.51-2.72 s. Memory stays at one batch either way.
ROWS_PER_BATCH = 100_000


def _copy_to_staging(
    duck: duckdb.DuckDBPyConnection,
    stage: warehouse_tables.TableRef,
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


class Prepared:
    """A load applied in an open PostgreSQL transaction, holding the table's lock: ``finish``
    commits it, ``abandon`` rolls it back. Either closes the connection."""

    def __init__(self, pg: PgConnection, committed: warehouse_tables.Committed, failure: str, hidden: list[str]):
        self.pg, self.committed, self._failure, self._hidden = pg, committed, failure, hidden

    def finish(self) -> None:
        try:
            self.pg.commit()
        except psycopg2.Error as err:
            failed = PostgresDestinationError(secrets.scrub(f"{self._failure}: {str(err).strip()}", extra=self._hidden))
            # the driver's error may hold the password: dropped, its codes kept
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
    stage: warehouse_tables.TableRef,
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

    def apply(tx: "Transaction", columns: list[Column]) -> warehouse_tables.Committed:
        return tx.commit(columns, plan, schema_policy, pipeline=pipeline, run_id=run_id, data_columns=data_columns)

    return prepare_staged(duck, stage, dsn, schema, table, rows_per_batch, "loading into", apply)


def commit(
    duck: duckdb.DuckDBPyConnection,
    stage: warehouse_tables.TableRef,
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
) -> warehouse_tables.Committed:
    """Commit the DuckDB ``stage`` into PostgreSQL table ``schema.table`` by ``sync.mode``.

    ``dsn`` is a libpq connection string or URI, password included; it never appears in
    an error. ``schema_policy`` says what happens when the load's columns differ from the
    table's, as in the warehouse: ``freeze`` fails naming every difference; ``evolve``
    adds new columns (NULL in older rows); ``discard`` leaves new columns out. A column
    the load lacks is kept and NULL in new rows (a replace keeps it too); a changed type
    always fails. Leaves ``stage`` as it was. Without a ``plan``, the pipeline's state in this
    database says what the load does (a pending full refresh or rewind, the saved cursor).

    Raises PostgresDestinationError (driver errors, scrubbed) or warehouse_tables.SchemaMismatch;
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
    columns = [pg_column(name, duckdb_type) for name, duckdb_type in warehouse_tables.columns_of(duck, stage)]
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
        committed = apply(Transaction(pg.cursor(), names), columns)
    except (psycopg2.Error, adbc_driver_manager.Error) as err:
        Prepared(pg, None, failure, hidden).abandon()
        failed = PostgresDestinationError(secrets.scrub(f"{failure}: {str(err).strip()}", extra=hidden))
        # the driver's error may hold the password: dropped, its codes kept
        raise with_codes(failed, err, connected=True) from None
    except BaseException:
        Prepared(pg, None, failure, hidden).abandon()
        raise
    return Prepared(pg, committed, failure, hidden)
