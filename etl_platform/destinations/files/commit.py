r"""Parquet or CSV files as a destination, in a local folder or under an S3 prefix.

A table is a folder (on S3, a key prefix) of version folders holding the data files, and a
``_manifest.json`` listing the files of the current version, its columns and the saved
cursor; ``files_storage`` describes the layout, how the manifest is replaced and how two
writers are kept apart. Readers, and merge/incremental here, read only the listed files:
anything else in the folder is invisible. ``read_table`` gives the SQL to read them.

A commit writes its data files into a new version folder (never over a listed file), then
replaces ``_manifest.json`` in one atomic step. A failure before that step changes nothing
a reader sees (ATOM), and the cursor travels in the same manifest as the rows it describes
(WM). Once the new manifest is in place, files listed by neither it nor the previous
manifest and older than the commit (what failed runs left) are deleted; the previous
version's files stay until the next commit so a reader that opened the previous manifest
can finish. A failed clean-up does not fail the commit: the next commit tries again.

Sync modes mean what they mean in ``steps/warehouse_tables.py``:

- replace: a new version holding exactly the staged rows.
- append: the staged rows' files are added to the list.
- merge rewrites the table: the listed files and the staged rows are read in DuckDB, the
  latest staged row per key (highest cursor, then the row read last) replaces every row
  with that key, and the result is written as a new version.
- incremental: staged rows below the saved cursor are dropped; rows already loaded are not
  loaded twice (by key through merge, or without a key by comparing every data column with
  the table's rows at the saved cursor); the highest cursor in the table is saved in the
  same manifest.

Schema changes follow ``schema_policy`` as in the warehouse: freeze fails naming every new,
missing and changed column; evolve adds new columns (older files read NULL for them);
discard drops new columns from the warehouse_tables. A column the load lacks is written as NULL, and a
changed type always fails. A table's file format changes only by a replace.

CSV files have a header, RFC 4180 quoting and CRLF line ends. A text cell starting with
``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` so a spreadsheet shows it rather
than running it as a formula: the table holds the prefixed text, and merge and incremental
compare staged rows in that form. Numbers, dates and other typed cells cannot hold a
formula and are written as they are. A column name that could start a formula, or holds a
line break (DuckDB cannot read such a header back), is refused for CSV.

Partition columns are kept inside each file as well as in its folder name, so a listed
file read alone is complete and no value has to be decoded from a path. DuckDB
percent-encodes ``/``, ``\``, ``=``, ``%`` and spaces in folder names, so a value such as
``../x`` names the folder ``col=..%2Fx``; a written path outside the version folder is
refused all the same."""

import contextlib
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
from botocore.exceptions import ClientError

from etl_platform.destinations.files.state import HISTORY_KEPT, _entry, _now, read_state
from etl_platform.destinations.files.storage import MANIFEST as MANIFEST
from etl_platform.destinations.files.storage import ConcurrentCommit as ConcurrentCommit
from etl_platform.destinations.files.storage import FileFormat, FilesLocation, Manifest, _LocalTable, _S3Table, _version
from etl_platform.destinations.files.writing import _LATEST, _STAGED, TableWrite, _reconcile
from etl_platform.destinations.safe_export import FORMULA_STARTS
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.pipeline import SchemaChanges, SyncSpec


@dataclass
class Prepared:
    """A commit whose data files are written: ``finish`` puts its manifest in place (the commit),
    ``abandon`` leaves them unlisted (the next commit removes them)."""

    committed: warehouse_tables.Committed
    target: "_LocalTable | _S3Table"
    manifest: Manifest
    before: Manifest | None
    keep: set[str]
    started: float

    def finish(self) -> None:
        self.target.put_manifest(self.manifest, self.before)
        try:
            self.target.remove_unlisted(self.keep, older_than=self.started)
        except (OSError, ClientError):
            pass  # committed already; the next commit removes what is left

    def abandon(self) -> None:
        pass


def prepare(
    duck: duckdb.DuckDBPyConnection,
    stage: warehouse_tables.TableRef,
    *,
    location: FilesLocation,
    schema: str,
    table: str,
    plan: warehouse_state.Plan,
    pipeline: str,
    run_id: str,
    data_columns: list[str],
    file_format: FileFormat = "parquet",
    partition_by: Sequence[str] = (),
    schema_policy: SchemaChanges = "freeze",
) -> Prepared:
    """Write the staged rows' files for a commit by ``plan`` (see the module's docstring); the
    manifest that commits them is put in place by ``finish``. Leaves ``stage`` as it was."""
    if file_format not in ("parquet", "csv"):
        raise ValueError(f"file_format must be parquet or csv, not {file_format!r}")
    sync = plan.sync
    target = location.table(schema, table)
    before, started = target.read_manifest()
    staged = warehouse_tables.columns_of(duck, stage)
    found, columns = _reconcile(staged, before, schema_policy, str(target), keep_dropped=plan.replaces_table)
    _check_request(columns, before, sync, file_format, partition_by, str(target), replacing=plan.replaces_table)
    version = _version(before) + 1
    previous = list(before.files) if before else []
    cursor_before = plan.cursor_before
    deleted = skipped = 0
    with tempfile.TemporaryDirectory(prefix="etl-files-") as scratch:
        work = TableWrite(
            duck,
            target,
            before,
            columns,
            sync,
            file_format,
            tuple(partition_by),
            Path(scratch),
            f"v{version:08d}-{uuid.uuid4().hex[:12]}",
        )
        try:
            work.copy_stage(stage, dict(staged))
            cursor_after = cursor_before
            if sync.mode == "incremental" and plan.bound is not None and not plan.replaces_table:
                skipped = work.drop_loaded([] if plan.replace_from is not None else previous, plan.bound, data_columns)
            base = previous
            if sync.mode == "incremental" and plan.replace_from is not None and not plan.replaces_table:
                deleted, base = work.below(previous, plan.replace_from)
            if plan.replaces_table:
                deleted = sum(f.rows for f in previous)
                rows, files = work.append([])
            elif sync.mode == "merge" or (sync.mode == "incremental" and sync.primary_key):
                rows, files = work.merge(base)
            else:
                rows, files = work.append(base)
            if sync.mode == "incremental":
                highest_before = None if plan.replaces_table or plan.replace_from is not None else cursor_before
                cursor_after, files = work.highest_cursor(files, highest_before)
                cursor_after = cursor_after if cursor_after is not None else plan.replace_from
        finally:
            with contextlib.suppress(duckdb.Error):  # in an aborted transaction the caller's rollback drops them
                duck.execute(f"DROP TABLE IF EXISTS {_STAGED}")
                duck.execute(f"DROP TABLE IF EXISTS {_LATEST}")
    history = (
        *(before.history if before else ()),
        _entry("load", run_id, plan.load_id, cursor_before, cursor_after, rows, deleted),
    )
    manifest = Manifest(
        version,
        file_format,
        tuple(columns),
        tuple(files),
        cursor_after,
        tuple(partition_by),
        pipeline,
        run_id,
        _now(),
        history=history[-HISTORY_KEPT:],
    )
    committed = warehouse_tables.Committed(
        rows,
        skipped,
        cursor_before,
        cursor_after if sync.mode == "incremental" else None,
        found,
        rows_deleted=deleted,
        rows_already_loaded=work.already,
    )
    return Prepared(committed, target, manifest, before, {f.path for f in [*files, *previous]}, started)


def commit(
    duck: duckdb.DuckDBPyConnection,
    stage: warehouse_tables.TableRef,
    *,
    location: FilesLocation,
    schema: str,
    table: str,
    sync: SyncSpec,
    pipeline: str,
    run_id: str,
    data_columns: list[str],
    file_format: FileFormat = "parquet",
    partition_by: Sequence[str] = (),
    schema_policy: SchemaChanges = "freeze",
    plan: warehouse_state.Plan | None = None,
) -> warehouse_tables.Committed:
    """Commit the staged rows to the file table by ``sync.mode`` (or ``plan``; without one, the
    table's manifest says what the load does: a pending full refresh or rewind, the saved cursor).
    The new manifest is the commit. Leaves ``stage`` as it was."""
    if plan is None:
        plan = warehouse_state.plan_for(read_state(location, schema, table), sync, load_id=run_id)
    prepared = prepare(
        duck,
        stage,
        location=location,
        schema=schema,
        table=table,
        plan=plan,
        pipeline=pipeline,
        run_id=run_id,
        data_columns=data_columns,
        file_format=file_format,
        partition_by=partition_by,
        schema_policy=schema_policy,
    )
    prepared.finish()
    return prepared.committed


def _check_request(
    columns: list[tuple[str, str]],
    before: Manifest | None,
    sync: SyncSpec,
    file_format: str,
    partition_by: Sequence[str],
    where: str,
    *,
    replacing: bool = False,
) -> None:
    names = dict(columns)
    needed = {
        "partition_by": list(partition_by),
        "primary_key": sync.primary_key,
        "cursor": [sync.cursor] if sync.cursor else [],
    }
    for what, wanted in needed.items():
        missing = [c for c in wanted if c not in names]
        if missing:
            raise ValueError(f"{what} names {', '.join(missing)}, not a column of the load for {where}")
    if before and before.file_format != file_format and not replacing:
        raise ValueError(
            f"{where} is stored as {before.file_format}; only a replace can rewrite it as {file_format}. Nothing was "
            "changed."
        )
    if file_format == "csv":
        risky = [n for n in names if n.startswith(FORMULA_STARTS) or "\n" in n or "\r" in n]
        if risky:
            raise ValueError(
                f"column names that start a spreadsheet formula or hold a line break cannot head a CSV file: "
                f"{', '.join(map(repr, risky))}"
            )
