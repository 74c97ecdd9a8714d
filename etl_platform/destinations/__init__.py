"""Where a pipeline's valid rows are committed: the DuckDB warehouse, a PostgreSQL table, or a
table of Parquet/CSV files in a local folder or under an S3 prefix.

Every destination takes the rows staged in the warehouse and commits them by the pipeline's
sync mode, with the saved cursor in the same commit as the rows (a PostgreSQL transaction,
a file table's manifest). Rejected rows always stay in the warehouse, next to the stage.

A load prepares the destination's commit inside the warehouse transaction that records its
rejected rows and ledger, commits that transaction, then the destination's (see
``Destination``): a crash between the two is recovered by the next load, from the load id the
destination's commit records. Data and bookkeeping are one unit.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import duckdb

from etl_platform.automation.failure_codes import FailureCodes, with_codes
from etl_platform.spec import SchemaChanges, SyncSpec
from etl_platform.sql import quote
from etl_platform.steps import load

WAREHOUSE = "warehouse"
DESTINATION_KINDS = ("postgres", "local", "s3")  # connection kinds a pipeline may load into


class DestinationError(Exception):
    """Committing to a destination failed; it was left as it was. The message holds no credential;
    ``codes`` are the driver's (SQLSTATE, S3 error code, ...), for ``retries.classify``."""

    codes: FailureCodes = FailureCodes()


class Destination(Protocol):
    """Where a load's valid rows are committed, with the pipeline's state and history.

    A commit may take two steps. ``commit`` (or ``replace_slice``) applies the load inside the
    caller's warehouse transaction and leaves the destination's own commit pending; once the
    warehouse transaction (rejected rows, ledger) has committed, ``finish`` makes it durable, or
    ``abandon`` undoes it. A load interrupted between the two is found by ``committed_loads``
    (its load id is recorded in the destination's own commit) and its warehouse bookkeeping is
    kept or undone accordingly (``steps.ingest.recover``), so data and bookkeeping stay one unit.
    The warehouse itself commits in one step: ``two_phase`` is False and ``finish`` does nothing.
    """

    two_phase: bool

    def __str__(self) -> str: ...

    def state(self, duck: duckdb.DuckDBPyConnection, pipeline: str) -> load.State: ...

    def saved_cursor(self, duck: duckdb.DuckDBPyConnection, pipeline: str) -> str | None: ...

    def commit(
        self, duck: duckdb.DuckDBPyConnection, stage: load.TableRef, plan: load.Plan, *,
        pipeline: str, run_id: str, data_columns: list[str], schema_changes: SchemaChanges,
    ) -> load.Committed: ...

    def replace_slice(
        self, duck: duckdb.DuckDBPyConnection, stage: load.TableRef, part: load.Slice, *,
        pipeline: str, run_id: str, load_id: str, schema_changes: SchemaChanges,
    ) -> load.Committed:
        """Delete the rows of one partition (``part``) and insert the staged rows that belong
        to it, in one commit: a partition's load (see ``etl_platform.partitions``)."""
        ...

    def finish(self) -> None: ...

    def abandon(self) -> None: ...

    def committed_loads(self, duck: duckdb.DuckDBPyConnection, pipeline: str, load_ids: list[str]) -> set[str]: ...

    def summary(self, duck: duckdb.DuckDBPyConnection) -> tuple[int, list[tuple[str, str]]]:
        """The committed table's row count and (column, type) list."""
        ...

    def reset_state(self, duck: duckdb.DuckDBPyConnection, pipeline: str, to: str | None) -> tuple[str | None, str | None]:
        """Make the next load a full refresh (``to`` None) or a rewind to cursor ``to``."""
        ...

    def history(self, duck: duckdb.DuckDBPyConnection, pipeline: str, limit: int = 100) -> list[load.HistoryEntry]: ...

    def cannot_hold(self, columns: dict[str, str]) -> list[tuple[str, str]]:
        """Values of the staged ``columns`` (name -> DuckDB type) this destination cannot store
        exactly: (reason, SQL predicate true for such a value). Their rows are rejected with the
        reason instead of landing changed (EXACT)."""
        ...


@dataclass(frozen=True)
class WarehouseTable:
    table: load.TableRef
    two_phase = False

    def __str__(self) -> str:
        return f"warehouse table {self.table}"

    def state(self, duck, pipeline):
        return load.read_state(duck, pipeline)

    def saved_cursor(self, duck, pipeline):
        return load.saved_cursor(duck, pipeline)

    def commit(self, duck, stage, plan, *, pipeline, run_id, data_columns, schema_changes):
        return load.commit(
            duck, stage, self.table, plan, pipeline=pipeline, run_id=run_id, data_columns=data_columns, schema_changes=schema_changes
        )

    def replace_slice(self, duck, stage, part, *, pipeline, run_id, load_id, schema_changes):
        return load.replace_slice(duck, stage, self.table, part, schema_changes=schema_changes, pipeline=pipeline, run_id=run_id, load_id=load_id)

    def finish(self):
        pass

    def abandon(self):
        pass

    def committed_loads(self, duck, pipeline, load_ids):
        return set(load_ids)  # committed in the warehouse's own transaction

    def summary(self, duck):
        if not load.table_exists(duck, self.table):
            return 0, []
        return load.scalar(duck, f"SELECT count(*) FROM {self.table.sql}") or 0, load.columns_of(duck, self.table)

    def reset_state(self, duck, pipeline, to):
        return load.reset_state(duck, pipeline, to, table=self.table)

    def history(self, duck, pipeline, limit=100):
        return load.history(duck, pipeline, limit)

    def cannot_hold(self, columns):
        return []


class _Pending:
    """The destination commit a load has prepared, waiting for ``finish`` or ``abandon``."""

    def __init__(self):
        self.handle = None

    def hold(self, handle) -> None:
        self.handle = handle

    def take(self):
        handle, self.handle = self.handle, None
        return handle


@dataclass(frozen=True)
class PostgresTable:
    """A table in a PostgreSQL database; the cursor in that database's ``_etl.state``."""

    connector: "PostgresConnector"  # noqa: F821
    schema: str
    table: str
    pending: _Pending = field(default_factory=_Pending, compare=False, repr=False)
    two_phase = True

    def __str__(self) -> str:
        return f"PostgreSQL table {self.schema}.{self.table} of connection {self.connector.name}"

    def state(self, duck, pipeline):
        from etl_platform.destinations import postgres

        return postgres.read_state(self.connector.uri(), pipeline, f"{self.schema}.{self.table}")

    def saved_cursor(self, duck, pipeline):
        return self.state(duck, pipeline).cursor

    def commit(self, duck, stage, plan, *, pipeline, run_id, data_columns, schema_changes):
        from etl_platform.destinations import postgres

        prepared = postgres.prepare(
            duck, stage, dsn=self.connector.uri(), schema=self.schema, table=self.table, plan=plan,
            pipeline=pipeline, run_id=run_id, data_columns=data_columns, schema_policy=schema_changes,
        )
        self.pending.hold(prepared)
        return prepared.committed

    def replace_slice(self, duck, stage, part, *, pipeline, run_id, load_id, schema_changes):
        from etl_platform.destinations import postgres_slice

        prepared = postgres_slice.prepare_slice(
            duck, stage, dsn=self.connector.uri(), schema=self.schema, table=self.table, part=part, schema_policy=schema_changes,
            pipeline=pipeline, run_id=run_id, load_id=load_id,
        )
        self.pending.hold(prepared)
        return prepared.committed

    def finish(self):
        prepared = self.pending.take()
        if prepared is not None:
            prepared.finish()

    def abandon(self):
        prepared = self.pending.take()
        if prepared is not None:
            prepared.abandon()

    def committed_loads(self, duck, pipeline, load_ids):
        from etl_platform.destinations import postgres

        return postgres.committed_loads(self.connector.uri(), load_ids)

    def summary(self, duck):
        from etl_platform.destinations import postgres

        return postgres.table_summary(self.connector.uri(), self.schema, self.table)

    def reset_state(self, duck, pipeline, to):
        from etl_platform.destinations import postgres

        return postgres.reset_state(self.connector.uri(), pipeline, to, table=f"{self.schema}.{self.table}")

    def history(self, duck, pipeline, limit=100):
        from etl_platform.destinations import postgres

        return postgres.history(self.connector.uri(), pipeline, limit)

    def cannot_hold(self, columns):
        return []  # PostgreSQL holds what the warehouse does; values it does not are rejected by casting


@dataclass(frozen=True)
class FileTable:
    """A table of Parquet or CSV files at ``<folder or prefix>/<schema>/<table>/``; the cursor in its manifest."""

    connector: "FileConnector"  # noqa: F821
    schema: str
    table: str
    file_format: str = "parquet"
    partition_by: tuple[str, ...] = ()
    pending: _Pending = field(default_factory=_Pending, compare=False, repr=False)
    two_phase = True

    def __str__(self) -> str:
        return f"{self.file_format} table {self.schema}/{self.table} of connection {self.connector.name}"

    def location(self) -> "FilesLocation":  # noqa: F821
        from etl_platform.destinations.files import FilesLocation

        if self.connector.kind == "s3":
            o = self.connector.options
            return FilesLocation.s3(o.bucket, o.prefix, client_factory=self.connector.client)
        return FilesLocation.local(self.connector.folder().root)

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        from etl_platform.destinations.files import ConcurrentCommit
        from etl_platform.secrets import scrub

        try:
            yield
        except (ValueError, OSError, ConcurrentCommit, ClientError, BotoCoreError) as err:
            raise with_codes(DestinationError(scrub(f"{doing} {self} failed: {err}")), err) from None

    def state(self, duck, pipeline):
        from etl_platform.destinations import files

        with self._errors("reading the cursor of"):
            return files.read_state(self.location(), self.schema, self.table)

    def saved_cursor(self, duck, pipeline):
        return self.state(duck, pipeline).cursor

    def commit(self, duck, stage, plan, *, pipeline, run_id, data_columns, schema_changes):
        from etl_platform.destinations import files

        with self._errors("committing to"):
            prepared = files.prepare(
                duck, stage, location=self.location(), schema=self.schema, table=self.table, plan=plan, pipeline=pipeline,
                run_id=run_id, data_columns=data_columns, file_format=self.file_format, partition_by=self.partition_by,
                schema_policy=schema_changes,
            )
        self.pending.hold(prepared)
        return prepared.committed

    def replace_slice(self, duck, stage, part, *, pipeline, run_id, load_id, schema_changes):
        # Refused when definitions load (etl_platform.partitions.checks); this guards direct use.
        raise DestinationError(f"{self} cannot replace one partition's rows: file destinations are not partitioned")

    def finish(self):
        prepared = self.pending.take()
        if prepared is not None:
            with self._errors("committing to"):
                prepared.finish()

    def abandon(self):
        prepared = self.pending.take()
        if prepared is not None:
            prepared.abandon()

    def committed_loads(self, duck, pipeline, load_ids):
        from etl_platform.destinations import files

        with self._errors("reading the manifest of"):
            return files.committed_loads(self.location(), self.schema, self.table, load_ids)

    def summary(self, duck):
        with self._errors("reading the manifest of"):
            manifest, _ = self.location().table(self.schema, self.table).read_manifest()
        if manifest is None:
            return 0, []
        return sum(f.rows for f in manifest.files), [tuple(c) for c in manifest.columns]

    def reset_state(self, duck, pipeline, to):
        from etl_platform.destinations import files

        with self._errors("resetting the cursor of"):
            return files.reset_state(self.location(), self.schema, self.table, to=to)

    def history(self, duck, pipeline, limit=100):
        from etl_platform.destinations import files

        with self._errors("reading the manifest of"):
            return files.history(self.location(), self.schema, self.table, limit)

    def cannot_hold(self, columns):
        if self.file_format != "parquet":
            return []
        # Parquet's INTERVAL counts milliseconds: DuckDB would drop an interval's last three digits.
        return [
            (f"{name}: a Parquet file holds an interval to the millisecond, this one has microseconds",
             f"{quote(name)} IS NOT NULL AND datepart('microseconds', {quote(name)}) % 1000 <> 0")
            for name, kind in columns.items() if kind == "INTERVAL"
        ]


def destination_for(connection_kind: str, connector, schema: str, table: str, *, file_format: str | None, partition_by) -> Destination:
    """The destination a pipeline declares; ``connector`` is None for the warehouse."""
    if connector is None:
        return WarehouseTable(load.TableRef(schema, table))
    if connection_kind == "postgres":
        return PostgresTable(connector, schema, table)
    return FileTable(connector, schema, table, file_format or "parquet", tuple(partition_by))
