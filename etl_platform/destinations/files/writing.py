"""Writing one version of a file table: data files in a new folder, merged, appended or cut by cursor."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace as with_changes
from pathlib import Path

import duckdb

from etl_platform.destinations.files.reading import _FILE, _ROW, _relation
from etl_platform.destinations.files.storage import DataFile, FileFormat, Manifest, _LocalTable, _S3Table
from etl_platform.destinations.safe_export import neutralised_sql
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.pipeline import SchemaChanges, SyncSpec
from etl_platform.sql import literal, quote

_STAGED, _LATEST = "__files_staged", "__files_latest"  # temp tables of one commit
FILE_SIZE = "256MB"  # DuckDB starts another file once one grows past this


def _neutralised(column: str) -> str:
    return neutralised_sql(column)


def _reconcile(
    staged: list[tuple[str, str]], before: Manifest | None, policy: SchemaChanges, where: str, *, keep_dropped: bool
) -> tuple[warehouse_tables.Drift, list[tuple[str, str]]]:
    """The columns to write, by ``policy``, and how the load differs from the table (as the warehouse's
    ``apply_schema_policy``)."""
    if policy not in ("freeze", "evolve", "discard"):
        raise ValueError(f"schema_policy must be freeze, evolve or discard, not {policy!r}")
    if before is None:
        return warehouse_tables.Drift(), staged
    loaded, existing = dict(staged), dict(before.columns)
    found = warehouse_tables.Drift.between(loaded, existing)
    found.refuse(policy, where)
    new = [(c, t) for c, t in staged if c not in existing and policy == "evolve"]
    if keep_dropped:
        return found, [(c, t) for c, t in staged if c in existing or policy == "evolve"] + [
            (c, t) for c, t in before.columns if c not in loaded
        ]
    return found, list(before.columns) + new


@dataclass
class TableWrite:
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

    def copy_stage(self, stage: warehouse_tables.TableRef, staged: dict[str, str]) -> None:
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
        return int(warehouse_tables.scalar(self.duck, f"SELECT count(*) FROM {_LATEST}") or 0), written

    def append(self, files: Sequence[DataFile]) -> tuple[int, list[DataFile]]:
        rows = int(warehouse_tables.scalar(self.duck, f"SELECT count(*) FROM {_STAGED}") or 0)
        return rows, [*files, *self.write(f"SELECT * EXCLUDE ({_ROW}) FROM {_STAGED}")]

    def drop_loaded(self, files: Sequence[DataFile], bound: str, data_columns: Sequence[str]) -> int:
        """Remove staged rows below the bound (returns how many) and, without a key, rows the table
        holds already at or after it, compared as whole rows and as a multiset (``warehouse_state.already_loaded``)."""
        assert self.sync.cursor
        cursor, type_ = quote(self.sync.cursor), self.cursor_type
        at_bound = f"CAST({literal(bound)} AS {type_})"
        skipped = int(warehouse_tables.scalar(self.duck, f"DELETE FROM {_STAGED} WHERE {cursor} < {at_bound}") or 0)
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
            "SELECT list_transform(?::VARCHAR[], lambda m: "
            f"m IS NOT NULL AND CAST(m AS {type_}) >= CAST(? AS {type_}))",
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
            warehouse_tables.scalar(
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
        top = warehouse_tables.scalar(
            self.duck, f"SELECT max(CAST(v AS {self.cursor_type}))::VARCHAR FROM unnest(?::VARCHAR[]) AS u(v)", [values]
        )
        return (top if top is not None else before), files
