"""Extract, stage, validate and load a file pipeline.

Files are scanned by DuckDB straight into a stage table beside the destination
(mapping and casting on the way). Then one transaction copies the rows that break a
rule to the rejected table with their reasons, file and line, and commits the rest by
the pipeline's sync mode. A failure at any point leaves the destination, its rejected
rows and its cursor as they were.
"""

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from etl_platform.connectors.files import (
    LINE,
    PARSE_ERROR,
    RAW_LINE,
    CsvFormat,
    FileFormat,
    ReaderRejects,
    file_format,
    missing_columns,
)
from etl_platform.destinations.base import Destination, DestinationError
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as load
from etl_platform.destinations.warehouse.destination import WarehouseTable
from etl_platform.intake import limits as intake_limits
from etl_platform.intake.fingerprints import forget_table, undo_ledger
from etl_platform.intake.intake import FileIntake
from etl_platform.intake.sniff import reader_error
from etl_platform.spec.columns import ColumnSpec
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.sql import literal, quote
from etl_platform.steps import csv_lines, stage
from etl_platform.steps.progress import Progress

REJECTED_COLUMNS = (
    "run_id VARCHAR, source_file VARCHAR, source_line BIGINT, kind VARCHAR, "
    "reasons VARCHAR[], record VARCHAR, rejected_at TIMESTAMPTZ"
)


class LoadFailed(Exception):
    """The load could not complete; the destination was left as it was."""


class NothingToReplace(LoadFailed):
    """A load that replaces the table accepted no rows from a source that exists (NOWIPE): the
    table was left as it was. The rejected rows and files are recorded; ``result`` says so."""

    def __init__(self, message: str, result: "LoadResult"):
        super().__init__(message)
        self.result = result


@dataclass
class FileResult:
    file: str
    rows_read: int = 0
    rows_rejected: int = 0
    rejected_whole: str | None = None
    duplicate_of: str | None = None  # skipped: its content was already loaded (says where)
    left_for_later: str | None = None  # not read: still being written (says why)


@dataclass
class LoadResult:
    # Q: rows_read = rows_accepted + rows_rejected. A partition's load counts only rows of its
    # partition (or of none); rows of other partitions are in committed.rows_outside.
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    committed: load.Committed
    files: list[FileResult]
    rejected_by_reason: dict[str, int]
    seconds: float
    table_rows: int | None  # None when the committed table could not be measured afterwards
    columns: list[tuple[str, str]] = field(default_factory=list)
    # Accepted rows a later row with the same key replaced within this load (merge): recorded in
    # the rejected table with kind 'superseded', so rows_accepted = rows_written + rows_superseded
    # (+ an incremental load's rows below the cursor or loaded already).
    rows_superseded: int = 0
    refused: str | None = None  # why the load was not committed (NothingToReplace)
    notices: list[str] = field(default_factory=list)  # what the source said of its columns (a type loaded as text, ...)

    @property
    def files_rejected(self) -> list[FileResult]:
        return [f for f in self.files if f.rejected_whole]

    @property
    def files_duplicate(self) -> list[FileResult]:
        return [f for f in self.files if f.duplicate_of]


@dataclass(frozen=True)
class Target:
    """Where a load goes. ``table`` names the stage and the rows' place in the warehouse;
    ``destination`` commits them (default: the warehouse table itself)."""

    table: load.TableRef
    rejected: load.TableRef
    destination: Destination | None = None

    @property
    def part(self) -> load.Slice | None:
        """The partition a partition's load replaces (its destination is then partitions.runs.SliceOf);
        staged rows of other time partitions are left out of it."""
        return getattr(self.destination, "part", None)

    @property
    def stage(self) -> load.TableRef:
        return load.TableRef(self.table.schema, f"__stage_{self.table.name}")

    @property
    def committer(self) -> Destination:
        return self.destination or WarehouseTable(self.table)


def use_utc(con: duckdb.DuckDBPyConnection) -> None:
    """Values of one zone render and convert the same on every machine: a timestamptz read as text
    (into a date, a time, the saved cursor) is UTC, not the session's local time."""
    con.execute("SET TimeZone = 'UTC'")


def plan_of(
    con: duckdb.DuckDBPyConnection, spec: PipelineSpec, target: "Target", pipeline: str, run_id: str
) -> warehouse_state.Plan:
    """How this load combines with what the destination holds: its state (a pending full refresh
    or rewind, the saved cursor) and the sync spec (the lookback below the cursor)."""
    import uuid

    sync = spec.sync
    state = target.committer.state(con, pipeline)
    column = spec.source.columns.get(sync.cursor or "")
    cursor_type = column.duckdb_type if column is not None else None

    def bound(cursor: str) -> str:
        return warehouse_state.lookback_bound(cursor, sync.lookback, cursor_type)

    return warehouse_state.plan_for(state, sync, load_id=f"{run_id}:{uuid.uuid4().hex[:12]}", lookback_bound=bound)


def _first_error_line(err: Exception) -> str:
    return reader_error(err)


def precheck(
    con: duckdb.DuckDBPyConnection, fmt: FileFormat, spec: PipelineSpec, path: Path
) -> tuple[str | None, dict]:
    """Why a file must be rejected whole before reading its rows (or None), and its dialect."""
    limits = spec.source.limits
    size = path.stat().st_size
    if size == 0:
        return "file is empty", {}
    try:
        offered, dialect = fmt.inspect(con, path, spec.source.columns)
    except duckdb.Error as err:
        return f"cannot be read as {fmt.name}: {_first_error_line(err)}", {}
    too_wide = intake_limits.too_many_columns(offered, limits.max_columns)
    if too_wide:
        return too_wide, {}
    missing = missing_columns(offered, spec.source.columns)
    if missing:
        return f"missing mapped column(s) {', '.join(missing)}; the file has {', '.join(offered[:30])}", {}
    return None, dialect


class _Ingest:
    def __init__(
        self,
        con,
        spec: PipelineSpec,
        target: Target,
        relative: Callable[[Path], str],
        run_id: str,
        pipeline: str,
        *,
        fmt: FileFormat | None = None,
        passthrough: frozenset[str] = frozenset(),
        plan: warehouse_state.Plan | None = None,
    ):
        self.con, self.spec, self.target, self.relative = con, spec, target, relative
        self.run_id, self.pipeline = run_id, pipeline
        self.plan = plan or plan_of(con, spec, target, pipeline, run_id)
        self.fmt = fmt or file_format(spec.source.file_format, spec.source.format_options)
        self.passthrough = passthrough
        self.row_errors = bool(getattr(self.fmt, "reports_row_errors", False))
        self.with_cast_errors = stage.needs_cast_errors(
            spec.source.columns, passthrough=passthrough, row_errors=self.row_errors
        )
        # Columns the reader delivers beside the data: each row's line, and lines it could not parse.
        self.reader_columns: dict[str, str] = {}
        if self.fmt.numbers_lines:
            self.reader_columns[LINE] = "BIGINT"
        if self.fmt.reports_parse_errors:
            self.reader_columns |= {PARSE_ERROR: "VARCHAR", RAW_LINE: "VARCHAR"}
        self.rules = stage.compile_rules(spec)
        self.fails = stage.any_fails(self.rules, with_cast_errors=self.with_cast_errors)
        if PARSE_ERROR in self.reader_columns:
            self.fails = f"({self.fails}) OR {PARSE_ERROR} IS NOT NULL"
        self.rejects = ReaderRejects() if self.fmt.records_rejects else None
        self.intake: FileIntake | None = None

    def stage_files(self, files: dict[Path, dict], excluded: dict[Path, str], progress: Progress) -> list["StagedFile"]:
        """Scan each file into the stage table, one autocommitted statement per file.

        The stage table is not the destination: nobody reads it, and the next load drops
        whatever a crash left of it. A file that fails midway rolls back only its own
        statement and is rejected whole; the other files stay staged.
        """
        con, spec = self.con, self.spec
        self.create_stage()
        staged: list[StagedFile] = []
        last_row = -1
        for path, dialect in files.items():
            lineage = (
                {"_source_file": self.relative(path), "_load_id": self.run_id}
                if spec.destination.lineage_columns
                else {}
            )
            progress.file_started(self.relative(path), _estimate_rows(path))
            scans_before = self._last_scan_id()
            try:
                dialect = self.fmt.prepare(con, path, spec.source.columns, dialect)
                scan = self.fmt.scan(path, spec.source.columns, self.rejects, dialect)
                keep = {name: quote(name) for name in self.reader_columns}
                mapped = stage.mapping_query(
                    spec.source.columns, scan, lineage=lineage, row_errors=self.row_errors, keep=keep
                )
                con.execute(
                    f"INSERT INTO {self.target.stage.sql} BY NAME {mapped}"
                    + intake_limits.stop_reading_after(spec.source.limits)
                )
            except duckdb.Error as err:
                excluded[path] = f"cannot be read as {self.fmt.name}: {_first_error_line(err)}"
                continue
            first, last = con.execute(
                f"SELECT min(rowid), max(rowid) FROM {self.target.stage.sql} WHERE rowid > ?", [last_row]
            ).fetchone()
            rows = 0 if first is None else last - first + 1
            over = intake_limits.over_row_limits(con, self.target.stage.sql, spec, first, last, rows)
            if over:
                con.execute(f"DELETE FROM {self.target.stage.sql} WHERE rowid BETWEEN ? AND ?", [first, last])
                excluded[path] = over
                last_row = last
                continue
            # The reader records a scan only when the file had lines it rejected: a file
            # without any must not be matched with the previous file's rejects.
            scan_id = self._last_scan_id()
            if scan_id == scans_before:
                scan_id = None
            progress.file_finished(rows)
            staged.append(
                StagedFile(path, self.relative(path), first if rows else last_row + 1, rows, scan_id, dialect)
            )
            if rows:
                last_row = last
        return staged

    def _last_scan_id(self) -> int | None:
        if not self.rejects:
            return None
        try:
            return load.scalar(self.con, f"SELECT max(scan_id) FROM {self.rejects.scans}")
        except duckdb.CatalogException:
            return None

    def create_stage(self) -> None:
        con, spec = self.con, self.spec
        columns = stage.stage_columns(spec, with_cast_errors=self.with_cast_errors) + list(self.reader_columns.items())
        columns_sql = ", ".join(f"{quote(n)} {t}" for n, t in columns)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.target.table.schema)}")
        con.execute(f"DROP TABLE IF EXISTS {self.target.stage.sql}")
        con.execute(f"CREATE TABLE {self.target.stage.sql} ({columns_sql})")
        for sql in stage.macros(spec.source.columns):
            con.execute(sql)

    def stage_stream(self, view: str, label: str, progress: Progress) -> list["StagedFile"]:
        """Scan a registered Arrow stream into the stage table: one unit, rows numbered from 1."""
        self.create_stage()
        lineage = {"_source_file": label, "_load_id": self.run_id} if self.spec.destination.lineage_columns else {}
        mapped = stage.mapping_query(
            self.spec.source.columns, quote(view), lineage=lineage, passthrough=self.passthrough
        )
        progress.file_started(label, 0)
        self.con.execute(f"INSERT INTO {self.target.stage.sql} BY NAME {mapped}")
        rows = load.scalar(self.con, f"SELECT count(*) FROM {self.target.stage.sql}") or 0
        progress.file_finished(rows)
        return [StagedFile(Path(label), label, 0, rows, None)]

    def leave_out_other_partitions(self, staged: list["StagedFile"]) -> dict[str, int]:
        """For a time partition's load: delete the staged rows whose partition column falls
        outside the window, before the rules run. They are not bad rows, only another
        partition's (whose own run validates and loads them), so they are neither checked nor
        rejected here. Rows without a value stay: a rule rejects them (they are in no partition).
        Returns how many rows of each staged file were left out."""
        part, stage_sql = self.target.part, self.target.stage.sql
        if part is None or part.start is None:
            return {}
        column_type = dict(load.columns_of(self.con, self.target.stage)).get(part.column)
        if column_type is None:
            return {}  # the commit names the missing partition column
        outside = f"{quote(part.column)} IS NOT NULL AND NOT ({part.where(column_type)})"
        counts = {
            f.name: load.scalar(
                self.con,
                f"SELECT count(*) FROM {stage_sql} WHERE rowid BETWEEN ? AND ? AND {outside}",
                [f.first_row, f.first_row + f.rows - 1],
            )
            or 0
            for f in staged
        }
        # Deleting keeps the other rows' rowids, which give the rejected rows their lines.
        self.con.execute(f"DELETE FROM {stage_sql} WHERE {outside}")
        return counts

    def record_rejections(self, staged: list["StagedFile"], excluded: dict[Path, str]) -> int:
        """Copy every rejected row, with reasons, file and line, into the rejected table.
        Returns how many staged rows broke a rule; they are deleted from the stage."""
        con, rej = self.con, self.target.rejected
        con.execute(f"CREATE TABLE IF NOT EXISTS {rej.sql} ({REJECTED_COLUMNS})")
        # Rules are evaluated in one scan; the few failing rows are copied aside with their rowid.
        self._add_destination_limits()
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __failing AS SELECT rowid AS __row, * FROM {self.target.stage.sql} WHERE "
            f"{self.fails}"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __files (__file VARCHAR, __first_row BIGINT, __last_row BIGINT, __first_line "
            "BIGINT, __scan_id BIGINT)"
        )
        for f in staged:
            con.execute(
                "INSERT INTO __files VALUES (?, ?, ?, ?, ?)",
                [f.name, f.first_row, f.first_row + f.rows - 1, self.fmt.first_data_line(), f.scan_id],
            )
        # Lines the reader rejected, with how many accepted rows precede each: turns a row's
        # position among accepted rows back into its line in the file.
        if self.rejects and any(f.scan_id is not None for f in staged):
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE __reader_lines AS
                SELECT f.__file, e.line AS __line, list(DISTINCT e.csv_line)[1] AS __csv_line,
                       list(DISTINCT CASE WHEN e.error_type = 'CAST' THEN e.column_name || ': not a valid ' || coalesce(m.type, 'value')
                                          ELSE lower(e.error_type) || ' (' || e.error_message || ')' END) AS __reasons,
                       e.line - f.__first_line - (row_number() OVER (PARTITION BY f.__file ORDER BY e.line) - 1) AS __accepted_before
                FROM {self.rejects.errors} e JOIN __files f ON e.scan_id = f.__scan_id
                LEFT JOIN (SELECT unnest(?) AS col, unnest(?) AS type) m ON m.col = e.column_name
                GROUP BY f.__file, f.__first_line, e.line""",
                [list(self._source_names()), list(self._source_types())],
            )
        else:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE __reader_lines (__file VARCHAR, __line BIGINT, __csv_line VARCHAR, "
                "__reasons VARCHAR[], __accepted_before BIGINT)"
            )
        target_cols = list(self.spec.source.columns)
        record = "to_json({" + ", ".join(f"{literal(c)}: s.{quote(c)}" for c in target_cols) + "})::VARCHAR"
        if self.with_cast_errors:
            record = f"coalesce(s.{stage.RAW_RECORD}, {record})"
        reasons = stage.reasons(self.rules, with_cast_errors=self.with_cast_errors)
        not_parse = f" WHERE s.{PARSE_ERROR} IS NULL" if PARSE_ERROR in self.reader_columns else ""
        self._locate("__failing")
        con.execute(
            f"INSERT INTO {rej.sql} SELECT ?, l.__file, l.__line, 'rule', {reasons}, {record}, now() "
            f"FROM __failing s JOIN __located l ON l.__row = s.__row{not_parse}",
            [self.run_id],
        )
        if PARSE_ERROR in self.reader_columns:
            # A line that could not be parsed has no values: it is rejected with its own text.
            con.execute(
                f"INSERT INTO {rej.sql} SELECT ?, l.__file, l.__line, 'parse', [s.{PARSE_ERROR}], s.{RAW_LINE}, now() "
                f"FROM __failing s JOIN __located l ON l.__row = s.__row WHERE s.{PARSE_ERROR} IS NOT NULL",
                [self.run_id],
            )
        con.execute(
            f"INSERT INTO {rej.sql} SELECT ?, __file, __line, 'parse', __reasons, __csv_line, now() FROM __reader_lines",
            [self.run_id],
        )
        if isinstance(self.fmt, CsvFormat):
            self._renumber_spanning_records(staged)
        for path, reason in excluded.items():
            con.execute(
                f"INSERT INTO {rej.sql} VALUES (?, ?, NULL, 'file', [?], NULL, now())",
                [self.run_id, self.relative(path), reason],
            )
        con.execute(f"DELETE FROM {self.target.stage.sql} WHERE rowid IN (SELECT __row FROM __failing)")
        return load.scalar(con, "SELECT count(*) FROM __failing") or 0

    def _add_destination_limits(self) -> None:
        """Rows holding a value the destination cannot store exactly break a rule of their own."""
        types = dict(
            self.con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = "
                "?",
                [self.target.stage.schema, self.target.stage.name],
            ).fetchall()
        )
        limits = [stage.Rule(reason, fails) for reason, fails in self.target.committer.cannot_hold(types)]
        if limits:
            self.rules = [*self.rules, *limits]
            self.fails = f"({self.fails}) OR " + " OR ".join(f"({r.fails})" for r in limits)

    def _renumber_spanning_records(self, staged: list["StagedFile"]) -> None:
        """Rejected rows of CSV files whose records span lines name the physical line they start on."""
        con = self.con
        with_rejections = {
            name
            for (name,) in con.execute(
                f"SELECT DISTINCT source_file FROM {self.target.rejected.sql} WHERE run_id = ? AND source_line IS NOT "
                "NULL",
                [self.run_id],
            ).fetchall()
        }
        reader_lines = dict(con.execute("SELECT __file, count(*) FROM __reader_lines GROUP BY __file").fetchall())
        for f in staged:
            if f.name not in with_rejections:
                continue
            records = self.fmt.first_data_line() - 1 + f.rows + reader_lines.get(f.name, 0)
            opts = self.fmt.options
            declared = (
                opts.delimiter if opts.delimiter is not None else (f.dialect or {}).get("delim"),
                opts.quote,
                opts.escape,
            )
            arguments = self.fmt.csv_arguments(f.path, f.dialect)
            csv_lines.renumber(con, self.target.rejected.sql, self.run_id, f.name, f.path, arguments, declared, records)

    def _locate(self, rows: str) -> None:
        """``__located(__row, __file, __line)``: the file and line of each stage row in temp table
        ``rows`` (its column ``__row``; and ``LINE`` when the reader numbers lines).

        Without line numbers from the reader, a row's line = its index among the rows the file
        staged + the first data line + how many reader-rejected lines come before it. That count
        is a running count over both sets merged in position order (reader lines first on ties):
        one window pass per file.
        """
        if LINE in self.reader_columns:
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE __located AS SELECT r.__row, f.__file, r.{LINE} AS __line "
                f"FROM {rows} r JOIN __files f ON r.__row BETWEEN f.__first_row AND f.__last_row"
            )
            return
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE __located AS
            WITH positioned AS (
                SELECT r.__row, f.__file, f.__first_line, r.__row - f.__first_row AS __index
                FROM {rows} r JOIN __files f ON r.__row BETWEEN f.__first_row AND f.__last_row
            ), merged AS (
                SELECT __file, __accepted_before AS __pos, 0 AS __is_row, NULL::BIGINT AS __row FROM __reader_lines
                UNION ALL
                SELECT __file, __index, 1, __row FROM positioned
            ), shifted AS (
                SELECT __row, __is_row,
                       sum(1 - __is_row) OVER (PARTITION BY __file ORDER BY __pos, __is_row ROWS UNBOUNDED PRECEDING) AS __shift
                FROM merged
            )
            SELECT s.__row, s.__file, s.__index + s.__first_line + sh.__shift AS __line
            FROM positioned s JOIN shifted sh ON sh.__is_row = 1 AND sh.__row = s.__row"""
        )

    def record_superseded(self) -> int:
        """Rows of a merge that a later row with the same key replaces within this load (the
        highest cursor wins, then the row read last): moved to the rejected table with kind
        'superseded' and the line that won, instead of being dropped without a trace."""
        sync, con, stage_sql = self.spec.sync, self.con, self.target.stage.sql
        if not sync.primary_key or sync.mode not in ("merge", "incremental"):
            return 0
        keys = ", ".join(quote(k) for k in sync.primary_key)
        order = ([f"{quote(sync.cursor)} DESC NULLS LAST"] if sync.cursor else []) + ["rowid DESC"]
        line = f", {LINE}" if LINE in self.reader_columns else ""
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __superseded AS SELECT __row, __winner FROM ("
            "SELECT rowid AS __row, first_value(rowid) OVER w AS __winner, row_number() OVER w AS __rank FROM "
            f"{stage_sql} "
            f"WINDOW w AS (PARTITION BY {keys} ORDER BY {', '.join(order)})) WHERE __rank > 1"
        )
        superseded = load.scalar(con, "SELECT count(*) FROM __superseded") or 0
        if not superseded:
            return 0
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __superseded_rows AS SELECT rowid AS __row{line} FROM {stage_sql} "
            "WHERE rowid IN (SELECT __row FROM __superseded UNION SELECT __winner FROM __superseded)"
        )
        self._locate("__superseded_rows")
        columns = [c for c in self.spec.source.columns]
        record = "to_json({" + ", ".join(f"{literal(c)}: s.{quote(c)}" for c in columns) + "})::VARCHAR"
        con.execute(
            f"INSERT INTO {self.target.rejected.sql} SELECT ?, lo.__file, lo.__line, 'superseded', "
            f"['superseded by ' || wi.__file || ' line ' || wi.__line || ' (the same key)'], {record}, now() "
            f"FROM __superseded x JOIN __located lo ON lo.__row = x.__row JOIN __located wi ON wi.__row = x.__winner "
            f"JOIN {stage_sql} s ON s.rowid = x.__row",
            [self.run_id],
        )
        con.execute(f"DELETE FROM {stage_sql} WHERE rowid IN (SELECT __row FROM __superseded)")
        return superseded

    def _source_names(self):
        return (col.source or name for name, col in self.spec.source.columns.items())

    def _source_types(self):
        return (col.type for col in self.spec.source.columns.values())


def _estimate_rows(path: Path) -> int:
    """Rows in a file, estimated from the size of its first lines (for progress only)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(65536)
    lines = head.count(b"\n")
    return int(size / (len(head) / lines)) if lines else 0


@dataclass(frozen=True)
class StagedFile:
    path: Path
    name: str
    first_row: int
    rows: int
    scan_id: int | None
    dialect: dict | None = None  # the CSV dialect it was read with, when one was detected


def run(
    con: duckdb.DuckDBPyConnection,
    spec: PipelineSpec,
    *,
    pipeline: str,
    files: list[Path],
    relative: Callable[[Path], str],
    target: Target,
    run_id: str,
    log: Callable[[str], None],
    progress_interval: float,
    plan: warehouse_state.Plan | None = None,
) -> LoadResult:
    """Load ``files`` into ``target`` by the pipeline's sync mode (or ``plan``, worked out from the
    destination's state when not given).

    Staging happens outside the destination; validating, recording rejections and
    committing the sync happen in one transaction, so readers see the old table or
    the new one and the rejected rows and cursor always match what was loaded.
    """
    started = time.monotonic()
    use_utc(con)
    recover(con, target, pipeline)
    plan = plan or plan_of(con, spec, target, pipeline, run_id)
    # Fingerprints, sniffs, decompresses and transcodes the files; rejects and skips some of them.
    # Across runs the ledger says which files were loaded; a load that replaces the table reads them all.
    intake = FileIntake(
        con,
        spec,
        pipeline=pipeline,
        table=f"{target.table.schema}.{target.table.name}",
        run_id=run_id,
        relative=relative,
        consult_ledger=not plan.replaces_table and target.part is None,
    )
    files, relative = intake.examine(files), intake.relative
    ingest = _Ingest(con, spec, target, relative, run_id, pipeline, plan=plan)
    ingest.intake = intake
    excluded: dict[Path, str] = dict(intake.rejected)
    dialects: dict[Path, dict] = {}
    for path in files:
        reason, dialects[path] = precheck(con, ingest.fmt, spec, path)
        if reason:
            excluded[path] = reason
    try:
        _stop_if_bad_files(spec, excluded, relative)
        with Progress(con, log, progress_interval, target.table.name) as progress:
            staged = ingest.stage_files({p: dialects[p] for p in files if p not in excluded}, excluded, progress)
        _stop_if_bad_files(spec, excluded, relative)
        for path, reason in excluded.items():
            log(f"rejecting file {relative(path)}: {reason}")
        for name, why in intake.duplicates:
            log(f"skipping file {name}: {why}")
        return _in_one_transaction(ingest, staged, excluded, started, log)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {target.stage.sql}")
        intake.close()


class _ArrowScan(FileFormat):
    """A typed Arrow stream registered with DuckDB: values are cast in SQL where the target differs."""

    name = "arrow"


def run_stream(
    con: duckdb.DuckDBPyConnection,
    spec: PipelineSpec,
    *,
    pipeline: str,
    reader,
    type_hints: dict[str, str],
    target: Target,
    run_id: str,
    log: Callable[[str], None],
    progress_interval: float,
    plan: warehouse_state.Plan | None = None,
) -> tuple[LoadResult, PipelineSpec]:
    """Load an Arrow stream (a table, a query, an API's records) into ``target``.

    The same stage, rules, rejected rows and sync as a file load. When the spec maps no
    columns, every source column is loaded with its own type. Returns the result and the
    spec as loaded (with the columns it found).
    """
    started = time.monotonic()
    use_utc(con)
    view = f"__source_{target.table.name}"
    con.register(view, reader)
    try:
        source_types = _stream_types(con, view, type_hints)
        if not spec.source.columns:
            spec = spec.model_copy(
                update={"source": spec.source.model_copy(update={"columns": _implicit_columns(source_types)})}
            )
        passthrough = frozenset(
            name
            for name, col in spec.source.columns.items()
            if not col.parsed_in_sql
            and source_types.get(col.source or name) == col.duckdb_type
            and (col.source or name) not in type_hints
        )
        missing = missing_columns(list(source_types), spec.source.columns)
        if missing:
            raise LoadFailed(
                f"{spec.source.label}: missing mapped column(s) {', '.join(missing)}; the source has "
                f"{', '.join(list(source_types)[:30])}"
            )
        recover(con, target, pipeline)
        ingest = _Ingest(
            con,
            spec,
            target,
            lambda p: str(p),
            run_id,
            pipeline,
            fmt=_ArrowScan(spec.source.csv),
            passthrough=passthrough,
            plan=plan,
        )
        try:
            with Progress(con, log, progress_interval, target.table.name) as progress:
                staged = ingest.stage_stream(view, spec.source.label, progress)
            return _in_one_transaction(ingest, staged, {}, started, log), spec
        finally:
            con.execute(f"DROP TABLE IF EXISTS {target.stage.sql}")
    finally:
        con.unregister(view)


def _stream_types(con: duckdb.DuckDBPyConnection, view: str, hints: dict[str, str]) -> dict[str, str]:
    described = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {quote(view)}").fetchall()}
    return {name: hints.get(name, dtype) for name, dtype in described.items()}


_TYPE_NAMES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ", "TIME WITH TIME ZONE": "TIMETZ"}


def _implicit_columns(source_types: dict[str, str]) -> dict[str, ColumnSpec]:
    """Every source column under its own name and type. Nested types (structs, maps) are
    kept as their text; names are used as they are, always quoted."""
    columns = {}
    for name, dtype in source_types.items():
        if name in stage.LINEAGE_COLUMNS:
            raise LoadFailed(
                f"the source has a column named {name!r}, which the lineage columns use; map the columns explicitly"
            )
        dtype = _TYPE_NAMES.get(dtype, dtype)
        if " " in dtype and not dtype.startswith("DECIMAL"):
            dtype = "VARCHAR"
        columns[name] = ColumnSpec.model_construct(
            source=None, type=dtype, format=None, expression=None, description=None
        )
    return columns


def _stop_if_bad_files(spec: PipelineSpec, excluded: dict[Path, str], relative: Callable[[Path], str]) -> None:
    if excluded and spec.source.on_bad_file == "fail":
        path, reason = next(iter(excluded.items()))
        raise LoadFailed(f"{relative(path)}: {reason}. on_bad_file is 'fail', so nothing was loaded.")


def _validate_and_commit(
    ingest: _Ingest, staged: list[StagedFile], excluded: dict[Path, str], started: float
) -> LoadResult:
    con, spec, target, plan = ingest.con, ingest.spec, ingest.target, ingest.plan
    left_out = ingest.leave_out_other_partitions(staged)
    rule_rejected = ingest.record_rejections(staged, excluded)
    rows_staged = sum(f.rows for f in staged) - sum(left_out.values())
    reader_rejected = load.scalar(con, "SELECT count(*) FROM __reader_lines") or 0
    superseded = ingest.record_superseded()
    if ingest.with_cast_errors:
        con.execute(f"ALTER TABLE {target.stage.sql} DROP COLUMN {stage.CAST_ERRORS}")
        con.execute(f"ALTER TABLE {target.stage.sql} DROP COLUMN {stage.RAW_RECORD}")
    for name in ingest.reader_columns:
        con.execute(f"ALTER TABLE {target.stage.sql} DROP COLUMN {quote(name)}")
    accepted = rows_staged - rule_rejected
    refused = _nothing_to_replace(ingest, accepted, rows_staged + reader_rejected, staged, excluded)
    if refused:
        committed = load.Committed(rows_written=0, cursor_before=plan.cursor_before, cursor_after=plan.cursor_before)
    else:
        committed = target.committer.commit(
            con,
            target.stage,
            plan,
            pipeline=ingest.pipeline,
            run_id=ingest.run_id,
            data_columns=list(spec.source.columns),
            schema_changes=spec.destination.schema_changes,
        )
    if left_out:
        committed = dataclasses.replace(committed, rows_outside=committed.rows_outside + sum(left_out.values()))
    per_file = dict(
        con.execute(
            f"SELECT source_file, count(*) FROM {target.rejected.sql} WHERE run_id = ? AND kind <> 'superseded' GROUP "
            "BY ALL",
            [ingest.run_id],
        ).fetchall()
    )
    reader_rows = dict(con.execute("SELECT __file, count(*) FROM __reader_lines GROUP BY ALL").fetchall())
    files = [
        FileResult(f.name, f.rows + reader_rows.get(f.name, 0) - left_out.get(f.name, 0), per_file.get(f.name, 0))
        for f in staged
    ] + [FileResult(ingest.relative(p), rejected_whole=reason) for p, reason in excluded.items()]
    by_reason = dict(
        con.execute(
            f"SELECT reason, count(*) FROM (SELECT unnest(reasons) AS reason FROM {target.rejected.sql} "
            "WHERE run_id = ? AND kind NOT IN ('file', 'superseded')) GROUP BY reason ORDER BY count(*) DESC, reason "
            "LIMIT 25",
            [ingest.run_id],
        ).fetchall()
    )
    return LoadResult(
        rows_read=rows_staged + reader_rejected,
        rows_accepted=accepted,
        rows_rejected=rule_rejected + reader_rejected,
        committed=committed,
        files=files,
        rejected_by_reason=by_reason,
        seconds=time.monotonic() - started,
        table_rows=None,
        rows_superseded=superseded,
        refused=refused,
    )


def _nothing_to_replace(
    ingest: _Ingest, accepted: int, read: int, staged: list[StagedFile], excluded: dict[Path, str]
) -> str | None:
    """Why this load must not replace the table (NOWIPE), or None: it replaces every row and
    accepted none, from files or a table that exist. A partition's empty window is not such a
    load (its partition is empty at the source), nor one the spec allows to empty the table."""
    if accepted or not ingest.plan.replaces_table or ingest.target.part is not None or ingest.spec.sync.allow_empty:
        return None
    if excluded and not staged:
        return f"all {len(excluded)} file(s) were rejected whole"
    if read:
        return f"every one of the {read:,} row(s) read was rejected"
    return "the source holds no rows"


def _in_one_transaction(
    ingest: _Ingest, staged: list[StagedFile], excluded: dict[Path, str], started: float, log: Callable[[str], None]
) -> LoadResult:
    """Validate, record rejections and the ledger, and commit in one warehouse transaction; then the
    destination's own commit, if it has one (see ``Destination``); then measure the table."""
    con, committer, target = ingest.con, ingest.target.committer, ingest.target
    con.execute("BEGIN TRANSACTION")
    try:
        result = _validate_and_commit(ingest, staged, excluded, started)
        if ingest.intake is not None and not result.refused:
            # The ledger of loaded files commits with the rows: a failed load records nothing. It
            # vouches only for rows the table holds: a load that replaces them (or a partition's
            # rows) replaces what it says.
            if ingest.plan.replaces_table or target.part is not None:
                forget_table(con, ingest.pipeline, f"{target.table.schema}.{target.table.name}")
            if target.part is None:
                ingest.intake.record(con, [f.name for f in staged], {ingest.relative(p) for p in excluded})
        if ingest.intake is not None:
            result.files += [FileResult(name, duplicate_of=why) for name, why in ingest.intake.duplicates]
            result.files += [FileResult(name, left_for_later=why) for name, why in ingest.intake.unsettled]
            for name, why in ingest.intake.unsettled:
                log(f"not reading file {name} now: {why}")
        if committer.two_phase and not result.refused:
            _mark_pending(con, ingest)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        committer.abandon()
        raise
    if result.refused:
        raise NothingToReplace(
            f"{result.refused}; {target.table} was left as it was (a load that replaces the table never swaps in an "
            "empty "
            "one; set sync.allow_empty to allow it)",
            result,
        )
    if committer.two_phase:
        try:
            committer.finish()
        except BaseException:
            recover(con, target, ingest.pipeline)  # undoes this load's bookkeeping unless the commit went through
            raise
        _clear_pending(con, ingest.plan.load_id)
    result.seconds = time.monotonic() - started
    try:
        result.table_rows, result.columns = committer.summary(con)
    except DestinationError as err:
        # The load is committed: failing the step now would make a retry load it twice.
        log(f"the load is committed, but {committer} could not be measured: {err}")
    return result


# Loads into another database or a file table commit twice: first the warehouse (rejected rows,
# ledger, and a marker naming the load), then the destination, whose commit records the load id.
PENDING = f"{load.STATE_SCHEMA}.pending_commits"


def _ensure_pending_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(load.STATE_SCHEMA)}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {PENDING} (pipeline VARCHAR, table_name VARCHAR, load_id VARCHAR, run_id VARCHAR, "
        "rejected_table VARCHAR, marked_at TIMESTAMPTZ)"
    )


def _mark_pending(con: duckdb.DuckDBPyConnection, ingest: _Ingest) -> None:
    _ensure_pending_table(con)
    t = ingest.target
    con.execute(
        f"INSERT INTO {PENDING} VALUES (?, ?, ?, ?, ?, now())",
        [ingest.pipeline, str(t.table), ingest.plan.load_id, ingest.run_id, str(t.rejected)],
    )


def _clear_pending(con: duckdb.DuckDBPyConnection, load_id: str) -> None:
    con.execute(f"DELETE FROM {PENDING} WHERE load_id = ?", [load_id])


def recover(con: duckdb.DuckDBPyConnection, target: "Target", pipeline: str) -> int:
    """Settle loads of this table that were interrupted between the warehouse's commit and the
    destination's: the destination says which load ids it committed; the warehouse bookkeeping
    (rejected rows, ledger) of the others is undone. Returns how many were undone."""
    committer = target.committer
    if not committer.two_phase:
        return 0
    _ensure_pending_table(con)
    pending = con.execute(
        f"SELECT load_id, run_id, rejected_table FROM {PENDING} WHERE pipeline = ? AND table_name = ?",
        [pipeline, str(target.table)],
    ).fetchall()
    if not pending:
        return 0
    done = committer.committed_loads(con, pipeline, [load_id for load_id, _, _ in pending])
    undone = 0
    con.execute("BEGIN TRANSACTION")
    try:
        for load_id, run_id, _ in pending:
            if load_id not in done:
                if load.table_exists(con, target.rejected):
                    con.execute(f"DELETE FROM {target.rejected.sql} WHERE run_id = ?", [run_id])
                undo_ledger(con, pipeline, str(target.table), run_id)
                undone += 1
            _clear_pending(con, load_id)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return undone
