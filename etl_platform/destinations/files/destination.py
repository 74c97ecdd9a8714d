"""A table of Parquet or CSV files (local folder or S3 prefix) as a destination."""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Self

import duckdb

from etl_platform.destinations.base import DestinationError, PendingCommit
from etl_platform.destinations.registry import register
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.failure_codes import with_codes
from etl_platform.spec.pipeline import SchemaChanges
from etl_platform.sql import quote


@register
@dataclass(frozen=True)
class FileTable:
    """A table of Parquet or CSV files at ``<folder or prefix>/<schema>/<table>/``; the cursor in its manifest."""

    connector: "FileConnector"  # noqa: F821
    schema: str
    table: str
    file_format: str = "parquet"
    partition_by: tuple[str, ...] = ()
    pending: PendingCommit = field(default_factory=PendingCommit, compare=False, repr=False)
    two_phase = True
    connection_kinds = ("local", "s3")
    writes_files = True

    @classmethod
    def declared(
        cls, connector, schema: str, table: str, *, file_format: str | None, partition_by: tuple[str, ...]
    ) -> "Self":
        return cls(connector, schema, table, file_format or "parquet", tuple(partition_by))

    @classmethod
    def asset_kinds(cls, connection_kind: str, file_format: str | None) -> set[str]:
        return {file_format or "parquet", "s3" if connection_kind == "s3" else "file"}

    def __str__(self) -> str:
        return f"{self.file_format} table {self.schema}/{self.table} of connection {self.connector.name}"

    def location(self) -> "FilesLocation":  # noqa: F821
        from etl_platform.destinations.files.storage import FilesLocation

        if self.connector.kind == "s3":
            o = self.connector.options
            return FilesLocation.s3(o.bucket, o.prefix, client_factory=self.connector.client)
        return FilesLocation.local(self.connector.folder().root)

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        from etl_platform.destinations.files.storage import ConcurrentCommit
        from etl_platform.secrets.references import scrub

        try:
            yield
        except (ValueError, OSError, ConcurrentCommit, ClientError, BotoCoreError) as err:
            # botocore's error may hold credentials (the access key id, a signed URL): dropped, its codes kept
            raise with_codes(DestinationError(scrub(f"{doing} {self} failed: {err}")), err) from None

    def state(self, duck: duckdb.DuckDBPyConnection, pipeline: str) -> warehouse_state.State:
        from etl_platform.destinations.files import state as files_state

        with self._errors("reading the cursor of"):
            return files_state.read_state(self.location(), self.schema, self.table)

    def saved_cursor(self, duck: duckdb.DuckDBPyConnection, pipeline: str) -> str | None:
        return self.state(duck, pipeline).cursor

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
    ) -> warehouse_tables.Committed:
        from etl_platform.destinations.files import commit as files

        with self._errors("committing to"):
            prepared = files.prepare(
                duck,
                stage,
                location=self.location(),
                schema=self.schema,
                table=self.table,
                plan=plan,
                pipeline=pipeline,
                run_id=run_id,
                data_columns=data_columns,
                file_format=self.file_format,
                partition_by=self.partition_by,
                schema_policy=schema_changes,
            )
        self.pending.hold(prepared)
        return prepared.committed

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
        # Refused when definitions load (etl_platform.validation.partitions); this guards direct use.
        raise DestinationError(f"{self} cannot replace one partition's rows: file destinations are not partitioned")

    def finish(self) -> None:
        prepared = self.pending.take()
        if prepared is not None:
            with self._errors("committing to"):
                prepared.finish()

    def abandon(self) -> None:
        prepared = self.pending.take()
        if prepared is not None:
            prepared.abandon()

    def committed_loads(self, duck: duckdb.DuckDBPyConnection, pipeline: str, load_ids: list[str]) -> set[str]:
        from etl_platform.destinations.files import state as files_state

        with self._errors("reading the manifest of"):
            return files_state.committed_loads(self.location(), self.schema, self.table, load_ids)

    def summary(self, duck: duckdb.DuckDBPyConnection) -> tuple[int, list[tuple[str, str]]]:
        with self._errors("reading the manifest of"):
            manifest, _ = self.location().table(self.schema, self.table).read_manifest()
        if manifest is None:
            return 0, []
        return sum(f.rows for f in manifest.files), [tuple(c) for c in manifest.columns]

    def reset_state(
        self, duck: duckdb.DuckDBPyConnection, pipeline: str, to: str | None
    ) -> tuple[str | None, str | None]:
        from etl_platform.destinations.files import state as files_state

        with self._errors("resetting the cursor of"):
            return files_state.reset_state(self.location(), self.schema, self.table, to=to)

    def history(
        self, duck: duckdb.DuckDBPyConnection, pipeline: str, limit: int = 100
    ) -> list[warehouse_state.HistoryEntry]:
        from etl_platform.destinations.files import state as files_state

        with self._errors("reading the manifest of"):
            return files_state.history(self.location(), self.schema, self.table, limit)

    def cannot_hold(self, columns: dict[str, str]) -> list[tuple[str, str]]:
        if self.file_format != "parquet":
            return []
        # Parquet's INTERVAL counts milliseconds: DuckDB would drop an interval's last three digits.
        return [
            (
                f"{name}: a Parquet file holds an interval to the millisecond, this one has microseconds",
                f"{quote(name)} IS NOT NULL AND datepart('microseconds', {quote(name)}) % 1000 <> 0",
            )
            for name, kind in columns.items()
            if kind == "INTERVAL"
        ]
