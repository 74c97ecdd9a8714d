"""Extract, stage, validate and load a file pipeline.

Files are scanned by DuckDB straight into a stage table beside the destination
(mapping and casting on the way). Then one transaction copies the rows that break a
rule to the rejected table with their reasons, file and line, and commits the rest by
the pipeline's sync mode. A failure at any point leaves the destination, its rejected
rows and its cursor as they were."""

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from etl_platform.connectors.formats.base import FileFormat, missing_columns
from etl_platform.destinations.base import DestinationError
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.intake import limits as intake_limits
from etl_platform.intake.fingerprints import forget_table
from etl_platform.intake.intake import FileIntake
from etl_platform.spec.columns import ColumnSpec
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.sql import quote
from etl_platform.steps import stage
from etl_platform.steps.load_result import FileResult, LoadFailed, LoadResult, NothingToReplace, StagedFile
from etl_platform.steps.load_target import Target, plan_of, use_utc
from etl_platform.steps.pending_commits import _clear_pending, _mark_pending, recover
from etl_platform.steps.progress import Progress
from etl_platform.steps.staging import Ingest, _first_error_line


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
    ingest = Ingest(con, spec, target, relative, run_id, pipeline, plan=plan)
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

    The same stage, rules, rejected rows and sync as a file warehouse_tables. When the spec maps no
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
        ingest = Ingest(
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
    ingest: Ingest, staged: list[StagedFile], excluded: dict[Path, str], started: float
) -> LoadResult:
    con, spec, target, plan = ingest.con, ingest.spec, ingest.target, ingest.plan
    left_out = ingest.leave_out_other_partitions(staged)
    rule_rejected = ingest.record_rejections(staged, excluded)
    rows_staged = sum(f.rows for f in staged) - sum(left_out.values())
    reader_rejected = warehouse_tables.scalar(con, "SELECT count(*) FROM __reader_lines") or 0
    superseded = ingest.record_superseded()
    if ingest.with_cast_errors:
        con.execute(f"ALTER TABLE {target.stage.sql} DROP COLUMN {stage.CAST_ERRORS}")
        con.execute(f"ALTER TABLE {target.stage.sql} DROP COLUMN {stage.RAW_RECORD}")
    for name in ingest.reader_columns:
        con.execute(f"ALTER TABLE {target.stage.sql} DROP COLUMN {quote(name)}")
    accepted = rows_staged - rule_rejected
    refused = _nothing_to_replace(ingest, accepted, rows_staged + reader_rejected, staged, excluded)
    if refused:
        committed = warehouse_tables.Committed(
            rows_written=0, cursor_before=plan.cursor_before, cursor_after=plan.cursor_before
        )
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
    ingest: Ingest, accepted: int, read: int, staged: list[StagedFile], excluded: dict[Path, str]
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
    ingest: Ingest, staged: list[StagedFile], excluded: dict[Path, str], started: float, log: Callable[[str], None]
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
