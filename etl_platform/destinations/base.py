"""Where a pipeline's valid rows are committed: the DuckDB warehouse, a PostgreSQL table, or a
table of Parquet/CSV files in a local folder or under an S3 prefix.

Every destination takes the rows staged in the warehouse and commits them by the pipeline's
sync mode, with the saved cursor in the same commit as the rows (a PostgreSQL transaction,
a file table's manifest). Rejected rows always stay in the warehouse, next to the stage.

A load prepares the destination's commit inside the warehouse transaction that records its
rejected rows and ledger, commits that transaction, then the destination's (see
``Destination``): a crash between the two is recovered by the next load, from the load id the
destination's commit records. Data and bookkeeping are one unit."""

from typing import ClassVar, Protocol

import duckdb

from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.failure_codes import FailureCodes
from etl_platform.spec.pipeline import SchemaChanges

WAREHOUSE = "warehouse"


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
    connection_kinds: ClassVar[tuple[str, ...]]  # the kinds of connection it loads into
    writes_files: ClassVar[bool]  # takes a file ``format`` and ``partition_by``

    @classmethod
    def declared(
        cls, connector, schema: str, table: str, *, file_format: str | None, partition_by: tuple[str, ...]
    ) -> "Destination":
        """The destination a pipeline's ``destination:`` declares (``connector`` None for the warehouse)."""
        ...

    @classmethod
    def asset_kinds(cls, connection_kind: str, file_format: str | None) -> set[str]:
        """The kinds (icons) the Dagster UI shows on the table's asset."""
        ...

    def __str__(self) -> str: ...

    def state(self, duck: duckdb.DuckDBPyConnection, pipeline: str) -> warehouse_state.State: ...

    def saved_cursor(self, duck: duckdb.DuckDBPyConnection, pipeline: str) -> str | None: ...

    def commit(
        self,
        duck: duckdb.DuckDBPyConnection,
        stage: warehouse_tables.TableRef,
        plan: warehouse_state.Plan,
        *,
        pipeline: str,
        run_id: str,
        data_columns: list[str],
        schema_changes: SchemaChanges,
    ) -> warehouse_tables.Committed: ...

    def replace_slice(
        self,
        duck: duckdb.DuckDBPyConnection,
        stage: warehouse_tables.TableRef,
        part: warehouse_tables.Slice,
        *,
        pipeline: str,
        run_id: str,
        load_id: str,
        schema_changes: SchemaChanges,
    ) -> warehouse_tables.Committed:
        """Delete the rows of one partition (``part``) and insert the staged rows that belong
        to it, in one commit: a partition's load (see ``etl_platform.partitions``)."""
        ...

    def finish(self) -> None: ...

    def abandon(self) -> None: ...

    def committed_loads(self, duck: duckdb.DuckDBPyConnection, pipeline: str, load_ids: list[str]) -> set[str]: ...

    def summary(self, duck: duckdb.DuckDBPyConnection) -> tuple[int, list[tuple[str, str]]]:
        """The committed table's row count and (column, type) list."""
        ...

    def reset_state(
        self, duck: duckdb.DuckDBPyConnection, pipeline: str, to: str | None
    ) -> tuple[str | None, str | None]:
        """Make the next load a full refresh (``to`` None) or a rewind to cursor ``to``."""
        ...

    def history(
        self, duck: duckdb.DuckDBPyConnection, pipeline: str, limit: int = 100
    ) -> list[warehouse_state.HistoryEntry]: ...

    def cannot_hold(self, columns: dict[str, str]) -> list[tuple[str, str]]:
        """Values of the staged ``columns`` (name -> DuckDB type) this destination cannot store
        exactly: (reason, SQL predicate true for such a value). Their rows are rejected with the
        reason instead of landing changed (EXACT)."""
        ...


class PendingCommit:
    """The destination commit a load has prepared, waiting for ``finish`` or ``abandon``."""

    def __init__(self):
        self.handle = None

    def hold(self, handle) -> None:
        self.handle = handle

    def take(self):
        handle, self.handle = self.handle, None
        return handle
