"""Parquet or CSV files as a destination, in a local folder or under an S3 prefix.

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

Sync modes mean what they mean in ``steps/load.py``:

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
discard drops new columns from the load. A column the load lacks is written as NULL, and a
changed type always fails. A table's file format changes only by a replace.

CSV files have a header, RFC 4180 quoting and CRLF line ends. A text cell starting with
``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` so a spreadsheet shows it rather
than running it as a formula: the table holds the prefixed text, and merge and incremental
compare staged rows in that form. Numbers, dates and other typed cells cannot hold a
formula and are written as they are. A column name that could start a formula, or holds a
line break (DuckDB cannot read such a header back), is refused for CSV.

Partition columns are kept inside each file as well as in its folder name, so a listed
file read alone is complete and no value has to be decoded from a path. DuckDB
percent-encodes ``/``, ``\\``, ``=``, ``%`` and spaces in folder names, so a value such as
``../x`` names the folder ``col=..%2Fx``; a written path outside the version folder is
refused all the same.
"""

import contextlib
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace as with_changes
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from botocore.exceptions import ClientError

from etl_platform.destinations.files.storage import MANIFEST as MANIFEST
from etl_platform.destinations.files.storage import ConcurrentCommit as ConcurrentCommit
from etl_platform.destinations.files.storage import (
    DataFile,
    FileFormat,
    FilesLocation,
    Manifest,
    _LocalTable,
    _S3Table,
    _version,
)
from etl_platform.destinations.safe_export import FORMULA_STARTS, neutralised_sql
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as load
from etl_platform.spec.pipeline import SchemaChanges, SyncSpec
from etl_platform.sql import literal, quote

FILE_SIZE = "256MB"  # DuckDB starts another file once one grows past this
_STAGED, _LATEST = "__files_staged", "__files_latest"
_ROW = "__etl_row"  # the staged row's position: among equal cursors the row read last wins
_FILE = "__etl_file"


# Reading


def _scan(paths: Sequence[str], file_format: str, *, with_file: bool) -> str:
    listed = "[" + ", ".join(literal(p) for p in paths) + "]"
    options = "union_by_name = true, hive_partitioning = false" + (
        f", filename = {literal(_FILE)}" if with_file else ""
    )
    if file_format == "parquet":
        return f"read_parquet({listed}, {options})"
    # Every cell as text, cast below to the manifest's types; "" is an empty string, an empty cell NULL.
    return (
        f"read_csv({listed}, header = true, delim = ',', quote = '\"', escape = '\"', all_varchar = true, "
        f"allow_quoted_nulls = false, {options})"
    )


def _relation(
    duck: duckdb.DuckDBPyConnection,
    columns: Sequence[tuple[str, str]],
    paths: Sequence[str],
    file_format: str,
    *,
    with_file: bool = False,
) -> str:
    """A SELECT over ``paths`` with exactly ``columns``, typed; NULL where a file lacks a column."""
    if not paths:
        return "(SELECT " + ", ".join(f"CAST(NULL AS {t}) AS {quote(n)}" for n, t in columns) + " LIMIT 0)"
    scan = _scan(paths, file_format, with_file=with_file)
    present = {row[0] for row in duck.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    select = [f"CAST({quote(n) if n in present else 'NULL'} AS {t}) AS {quote(n)}" for n, t in columns]
    return f"(SELECT {', '.join(select + ([_FILE] if with_file else []))} FROM {scan})"


def read_table(
    duck: duckdb.DuckDBPyConnection,
    location: FilesLocation,
    schema: str,
    table: str,
    *,
    download_to: Path | None = None,
) -> str:
    """SQL for the table's current version, to use as ``SELECT ... FROM <this>`` in ``duck``.

    Only the files the manifest lists are read. An S3 table is first downloaded to
    ``download_to``, which must outlive the queries. Raises FileNotFoundError when the
    table was never committed.
    """
    target = location.table(schema, table)
    manifest, _ = target.read_manifest()
    if manifest is None:
        raise FileNotFoundError(f"no table at {target}: it has not been committed yet")
    if isinstance(target, _S3Table) and download_to is None:
        raise ValueError(f"{target} is on S3: give download_to, a folder to copy its files into")
    paths = target.local_paths(manifest.files, download_to or Path())
    return _relation(duck, manifest.columns, list(paths), manifest.file_format)


def read_state(location: FilesLocation, schema: str, table: str) -> warehouse_state.State:
    manifest, _ = location.table(schema, table).read_manifest()
    return (
        warehouse_state.State(manifest.cursor, manifest.pending, manifest.rewind_from)
        if manifest
        else warehouse_state.State()
    )


def saved_cursor(location: FilesLocation, schema: str, table: str) -> str | None:
    return read_state(location, schema, table).cursor


def reset_state(
    location: FilesLocation, schema: str, table: str, *, to: str | None, run_id: str = "reset"
) -> tuple[str | None, str | None]:
    """Make the table's next load a full refresh (``to`` None: it replaces every row) or a rewind
    to ``to`` (it replaces the rows from that cursor value on), in a new manifest version with
    the same files. Returns the cursor before and after."""
    target = location.table(schema, table)
    manifest, _ = target.read_manifest()
    if manifest is None:
        if to is None:
            return None, None
        raise FileNotFoundError(f"no table at {target}: there is no cursor to rewind")
    pending, rewind_from = (warehouse_state.FULL_REFRESH, None) if to is None else (warehouse_state.REWIND, to)
    entry = _entry("reset" if to is None else "rewind", None, None, manifest.cursor, to, None, None)
    target.put_manifest(
        with_changes(
            manifest,
            version=manifest.version + 1,
            cursor=to,
            run_id=run_id,
            committed_at=_now(),
            pending=pending,
            rewind_from=rewind_from,
            history=(*manifest.history, entry)[-HISTORY_KEPT:],
        ),
        manifest,
    )
    return manifest.cursor, to


# Committing


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _neutralised(column: str) -> str:
    return neutralised_sql(column)


def _reconcile(
    staged: list[tuple[str, str]], before: Manifest | None, policy: SchemaChanges, where: str, *, keep_dropped: bool
) -> tuple[load.Drift, list[tuple[str, str]]]:
    """The columns to write, by ``policy``, and how the load differs from the table (as load.apply_schema_policy)."""
    if policy not in ("freeze", "evolve", "discard"):
        raise ValueError(f"schema_policy must be freeze, evolve or discard, not {policy!r}")
    if before is None:
        return load.Drift(), staged
    loaded, existing = dict(staged), dict(before.columns)
    found = load.Drift.between(loaded, existing)
    found.refuse(policy, where)
    new = [(c, t) for c, t in staged if c not in existing and policy == "evolve"]
    if keep_dropped:
        return found, [(c, t) for c, t in staged if c in existing or policy == "evolve"] + [
            (c, t) for c, t in before.columns if c not in loaded
        ]
    return found, list(before.columns) + new


@dataclass
class _Commit:
    duck: duckdb.DuckDBPyConnection
    target: "_LocalTable | _S3Table"
    before: Manifest | None
    columns: list[tuple[str, str]]
    sync: SyncSpec
    file_format: FileFormat
    partition_by: tuple[str, ...]
    scratch: Path
    folder: str
    already: int = 0  # staged rows the table held already (a keyless incremental load)
    writes: int = 0

    @property
    def cursor_type(self) -> str:
        return dict(self.columns)[self.sync.cursor or ""]

    def copy_stage(self, stage: load.TableRef, staged: dict[str, str]) -> None:
        """Copy the staged rows aside in the table's columns (and, for CSV, in their written form)."""
        select = []
        for name, type_ in self.columns:
            value = quote(name) if name in staged else f"CAST(NULL AS {type_})"
            if self.file_format == "csv" and type_ == "VARCHAR":
                value = _neutralised(value)
            select.append(f"{value} AS {quote(name)}")
        self.duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {_STAGED} AS SELECT {', '.join(select)}, rowid AS {_ROW} FROM {stage.sql}"
        )

    def existing(self, files: Sequence[DataFile]) -> str:
        """SQL reading these listed files (downloaded first from S3) in the table's columns."""
        file_format = self.before.file_format if self.before else self.file_format
        return _relation(self.duck, self.columns, list(self.target.local_paths(files, self.scratch)), file_format)

    def write(self, select: str) -> list[DataFile]:
        """Write the rows of ``select`` as new files in this commit's version folder (a second
        write of the same commit, a rewind's rewritten files, gets a version folder of its own)."""
        self.writes += 1
        folder = self.folder if self.writes == 1 else f"{self.folder.split('-')[0]}-{uuid.uuid4().hex[:12]}"
        out = self.target.output_folder(folder, self.scratch)
        options = [
            f"FORMAT {self.file_format}",
            f"FILE_SIZE_BYTES {literal(FILE_SIZE)}",
            "FILENAME_PATTERN 'part_{i}'",
            "RETURN_FILES true",
        ]
        if self.file_format == "csv":
            options += ["HEADER true", "DELIMITER ','", "QUOTE '\"'", "ESCAPE '\"'", "NEW_LINE '\\r\\n'"]
        if self.partition_by:
            options += [
                f"PARTITION_BY ({', '.join(quote(c) for c in self.partition_by)})",
                "WRITE_PARTITION_COLUMNS true",
            ]
        _, written = self.duck.execute(f"COPY ({select}) TO {literal(str(out))} ({', '.join(options)})").fetchone()
        inside = out.resolve()
        relative = {}
        for path in written:
            resolved = Path(path).resolve()
            if not resolved.is_relative_to(inside):
                raise ValueError(f"a partition value would write {path!r} outside the table folder")
            relative[str(resolved)] = f"{folder}/{resolved.relative_to(inside).as_posix()}"
        files = []
        for measured in self.measure(relative, self.file_format):
            if measured.rows:
                files.append(measured)
            else:  # DuckDB writes an empty file for an empty result; the manifest lists none
                Path(out.parent, measured.path).unlink()
        self.target.publish(out, files)
        return files

    def measure(self, paths: dict[str, str], file_format: str) -> list[DataFile]:
        """Rows and highest cursor of each local file in ``paths`` (local path -> listed path)."""
        cursor = self.sync.cursor
        found: dict[str, tuple[int, str | None]] = {}
        if paths:
            relation = _relation(
                self.duck, [(cursor, self.cursor_type)] if cursor else [], list(paths), file_format, with_file=True
            )
            highest = f"max({quote(cursor)})::VARCHAR" if cursor else "NULL"
            for local, rows, top in self.duck.execute(
                f"SELECT {_FILE}, count(*), {highest} FROM {relation} GROUP BY ALL"
            ).fetchall():
                found[local] = (rows, top)
        measured = []
        for local, listed in paths.items():
            rows, top = found.get(local, (0, None))
            measured.append(DataFile(listed, rows, {cursor: top} if cursor else {}))
        return measured

    def merge(self, files: Sequence[DataFile]) -> tuple[int, list[DataFile]]:
        """Rewrite the table with the latest staged row per key in place of the rows with that key."""
        keys = [quote(k) for k in self.sync.primary_key]
        order = ([f"{quote(self.sync.cursor)} DESC NULLS LAST"] if self.sync.cursor else []) + [f"{_ROW} DESC"]
        self.duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {_LATEST} AS SELECT * EXCLUDE (__rank) FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY {', '.join(order)}) AS __rank "
            f"FROM {_STAGED}) WHERE __rank = 1"
        )
        same_key = " AND ".join(f"t.{k} = l.{k}" for k in keys)
        names = ", ".join(quote(n) for n, _ in self.columns)
        written = self.write(
            f"SELECT {names} FROM {self.existing(files)} AS t WHERE NOT EXISTS (SELECT 1 FROM {_LATEST} AS l WHERE "
            f"{same_key}) "
            f"UNION ALL SELECT {names} FROM (SELECT * FROM {_LATEST} ORDER BY {_ROW})"
        )
        return int(load.scalar(self.duck, f"SELECT count(*) FROM {_LATEST}") or 0), written

    def append(self, files: Sequence[DataFile]) -> tuple[int, list[DataFile]]:
        rows = int(load.scalar(self.duck, f"SELECT count(*) FROM {_STAGED}") or 0)
        return rows, [*files, *self.write(f"SELECT * EXCLUDE ({_ROW}) FROM {_STAGED}")]

    def drop_loaded(self, files: Sequence[DataFile], bound: str, data_columns: Sequence[str]) -> int:
        """Remove staged rows below the bound (returns how many) and, without a key, rows the table
        holds already at or after it, compared as whole rows and as a multiset (``warehouse_state.already_loaded``)."""
        assert self.sync.cursor
        cursor, type_ = quote(self.sync.cursor), self.cursor_type
        at_bound = f"CAST({literal(bound)} AS {type_})"
        skipped = int(load.scalar(self.duck, f"DELETE FROM {_STAGED} WHERE {cursor} < {at_bound}") or 0)
        if self.sync.primary_key or not files or self.before is None:
            return skipped
        self.already = warehouse_state.already_loaded(
            self.duck,
            _STAGED,
            self.existing(self.reaching(files, bound)),
            self.sync.cursor,
            bound,
            type_,
            [c for c in data_columns if c in dict(self.before.columns) and c in dict(self.columns)],
        )
        return skipped

    def reaching(self, files: Sequence[DataFile], bound: str) -> list[DataFile]:
        """The listed files that may hold rows at or after ``bound`` (their highest cursor says so)."""
        cursor, type_ = self.sync.cursor, self.cursor_type
        maxima = [f.maxima.get(cursor) for f in files]
        reaches = self.duck.execute(
            f"SELECT list_transform(?::VARCHAR[], lambda m: m IS NOT NULL AND CAST(m AS {type_}) >= CAST(? AS {type_}))",
            [maxima, bound],
        ).fetchall()[0][0]
        return [f for f, reach in zip(files, reaches) if reach or cursor not in f.maxima]

    def below(self, files: Sequence[DataFile], bound: str) -> tuple[int, list[DataFile]]:
        """The table without its rows at or after ``bound`` (a rewind): files entirely below it are
        kept as they are, the others rewritten without those rows. Returns the rows removed."""
        cursor, type_ = quote(self.sync.cursor), self.cursor_type
        reaching = self.reaching(files, bound)
        if not reaching:
            return 0, list(files)
        names = ", ".join(quote(n) for n, _ in self.columns)
        relation = self.existing(reaching)
        removed = int(
            load.scalar(
                self.duck, f"SELECT count(*) FROM {relation} WHERE {cursor} >= CAST({literal(bound)} AS {type_})"
            )
            or 0
        )
        kept = [f for f in files if f not in reaching]
        rewritten = self.write(
            f"SELECT {names} FROM {relation} WHERE {cursor} < CAST({literal(bound)} AS {type_}) OR {cursor} IS NULL"
        )
        return removed, kept + rewritten

    def highest_cursor(self, files: list[DataFile], before: str | None) -> tuple[str | None, list[DataFile]]:
        """The highest cursor in the table (``before`` when it has none), measuring files that were not yet."""
        cursor = self.sync.cursor
        assert cursor
        unmeasured = [f for f in files if cursor not in f.maxima]
        if unmeasured:
            paths = self.target.local_paths(unmeasured, self.scratch)
            measured = {m.path: m.maxima[cursor] for m in self.measure(paths, self.file_format)}
            files = [
                with_changes(f, maxima={**f.maxima, cursor: measured[f.path]}) if f.path in measured else f
                for f in files
            ]
        values = [f.maxima[cursor] for f in files if f.maxima[cursor] is not None]
        top = load.scalar(
            self.duck, f"SELECT max(CAST(v AS {self.cursor_type}))::VARCHAR FROM unnest(?::VARCHAR[]) AS u(v)", [values]
        )
        return (top if top is not None else before), files


HISTORY_KEPT = 200  # history entries a manifest keeps


@dataclass
class Prepared:
    """A commit whose data files are written: ``finish`` puts its manifest in place (the commit),
    ``abandon`` leaves them unlisted (the next commit removes them)."""

    committed: load.Committed
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


def _entry(
    action: str,
    run_id: str | None,
    load_id: str | None,
    before: str | None,
    after: str | None,
    written: int | None,
    deleted: int | None,
) -> dict:
    return {
        "at": _now(),
        "action": action,
        "run_id": run_id,
        "load_id": load_id,
        "cursor_before": before,
        "cursor_after": after,
        "rows_written": written,
        "rows_deleted": deleted,
    }


def prepare(
    duck: duckdb.DuckDBPyConnection,
    stage: load.TableRef,
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
    staged = load.columns_of(duck, stage)
    found, columns = _reconcile(staged, before, schema_policy, str(target), keep_dropped=plan.replaces_table)
    _check_request(columns, before, sync, file_format, partition_by, str(target), replacing=plan.replaces_table)
    version = _version(before) + 1
    previous = list(before.files) if before else []
    cursor_before = plan.cursor_before
    deleted = skipped = 0
    with tempfile.TemporaryDirectory(prefix="etl-files-") as scratch:
        work = _Commit(
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
    committed = load.Committed(
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
    stage: load.TableRef,
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
) -> load.Committed:
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


def committed_loads(location: FilesLocation, schema: str, table: str, load_ids: list[str]) -> set[str]:
    """Which of ``load_ids`` the table's manifest records as committed."""
    manifest, _ = location.table(schema, table).read_manifest()
    recorded = {entry.get("load_id") for entry in (manifest.history if manifest else ())}
    return {load_id for load_id in load_ids if load_id in recorded}


def history(location: FilesLocation, schema: str, table: str, limit: int = 100) -> list[warehouse_state.HistoryEntry]:
    manifest, _ = location.table(schema, table).read_manifest()
    entries = list(manifest.history if manifest else ())[::-1][:limit]
    return [
        warehouse_state.HistoryEntry(
            e.get("at", ""),
            e.get("action", ""),
            e.get("run_id"),
            e.get("load_id"),
            e.get("cursor_before"),
            e.get("cursor_after"),
            e.get("rows_written"),
            e.get("rows_deleted"),
        )
        for e in entries
    ]


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
