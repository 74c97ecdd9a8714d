"""One load's work in the warehouse before its commit: inspect and stage the files or stream, record
the rejected rows with their reasons, leave out the rows of other partitions."""

from collections.abc import Callable
from pathlib import Path

import duckdb

from etl_platform.connectors.formats.base import (
    LINE,
    PARSE_ERROR,
    RAW_LINE,
    FileFormat,
    ReaderRejects,
    file_format,
)
from etl_platform.connectors.formats.csv import CsvFormat
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.intake import limits as intake_limits
from etl_platform.intake.intake import FileIntake
from etl_platform.intake.sniff import reader_error
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.sql import literal, quote
from etl_platform.steps import csv_lines, stage
from etl_platform.steps.load_result import StagedFile
from etl_platform.steps.load_target import Target, plan_of
from etl_platform.steps.progress import Progress

REJECTED_COLUMNS = (
    "run_id VARCHAR, source_file VARCHAR, source_line BIGINT, kind VARCHAR, "
    "reasons VARCHAR[], record VARCHAR, rejected_at TIMESTAMPTZ"
)


def _first_error_line(err: Exception) -> str:
    return reader_error(err)


class Ingest:
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
            return warehouse_tables.scalar(self.con, f"SELECT max(scan_id) FROM {self.rejects.scans}")
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
        rows = warehouse_tables.scalar(self.con, f"SELECT count(*) FROM {self.target.stage.sql}") or 0
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
        column_type = dict(warehouse_tables.columns_of(self.con, self.target.stage)).get(part.column)
        if column_type is None:
            return {}  # the commit names the missing partition column
        outside = f"{quote(part.column)} IS NOT NULL AND NOT ({part.where(column_type)})"
        counts = {
            f.name: warehouse_tables.scalar(
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
                       list(DISTINCT CASE WHEN e.error_type = 'CAST'
                                       THEN e.column_name || ': not a valid ' || coalesce(m.type, 'value')
                                          ELSE lower(e.error_type) || ' (' || e.error_message || ')' END) AS __reasons,
                       e.line - f.__first_line
                       - (row_number() OVER (PARTITION BY f.__file ORDER BY e.line) - 1) AS __accepted_before
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
            f"INSERT INTO {rej.sql} "
            "SELECT ?, __file, __line, 'parse', __reasons, __csv_line, now() FROM __reader_lines",
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
        return warehouse_tables.scalar(con, "SELECT count(*) FROM __failing") or 0

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
                       sum(1 - __is_row)
                           OVER (PARTITION BY __file ORDER BY __pos, __is_row ROWS UNBOUNDED PRECEDING) AS __shift
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
        superseded = warehouse_tables.scalar(con, "SELECT count(*) FROM __superseded") or 0
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
