"""Read a pipeline's source the way its kind reads, and load what it read.

The one entry point of a load, without Dagster: the load asset calls it, and so can a test
or a tool that needs a pipeline's exact behaviour. Files go through ``ingest.run``; tables,
queries and API records through ``ingest.run_stream``.
"""

import tempfile
from collections.abc import Callable
from pathlib import Path

from etl_platform import settings
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.sql import literal, quote
from etl_platform.steps import ingest, load_result, load_target, pending_commits
from etl_platform.steps import partition_reads as steps_partition_reads


def load_source(
    spec: PipelineSpec,
    *,
    pipeline: str,
    connector,
    con,
    target: load_target.Target,
    run_id: str,
    log: Callable[[str], None],
    progress_interval: float | None = None,
) -> load_result.LoadResult:
    """Read the source of ``spec`` through ``connector`` and load it into ``target``; returns the load's result."""
    interval = settings.progress_interval_seconds() if progress_interval is None else progress_interval
    load_target.use_utc(con)
    pending_commits.recover(con, target, pipeline)  # a load interrupted between its two commits, settled first
    plan = load_target.plan_of(con, spec, target, pipeline, run_id)
    if plan.full_refresh:
        log(f"a full refresh: this load replaces every row of {target.committer}")
    elif plan.replace_from is not None:
        log(f"a rewind: this load replaces the rows of {target.committer} from cursor {plan.replace_from!r} on")
    common = dict(target=target, run_id=run_id, log=log, progress_interval=interval, plan=plan)
    return _READERS[spec.source.reads](spec, pipeline, connector, con, common)


def _load_files(spec: PipelineSpec, pipeline: str, connector, con, common: dict) -> load_result.LoadResult:
    """The files the pattern matches (for a per-file partition, only its file), through ``ingest.run``."""
    src, target, log = spec.source, common["target"], common["log"]
    with connector.fetch(src.files) as found:
        log(f"{len(found.files)} file(s) match '{src.files}' in {found.location}")
        if not found.files and spec.sync.mode == "replace":
            raise load_result.LoadFailed(
                f"No files match '{src.files}' in {found.location}; {target.table} was left as it was "
                "(replace never swaps in an empty load)."
            )
        files = steps_partition_reads.files_of_run(found.files, found.relative, target.part, found.location)
        return ingest.run(con, spec, pipeline=pipeline, files=files, relative=found.relative, **common)


def _load_rows(spec: PipelineSpec, pipeline: str, connector, con, common: dict) -> load_result.LoadResult:
    """A table or query, filtered at the source by the cursor and the partition's window, as an Arrow stream."""
    target, log = common["target"], common["log"]
    cursor_column, bound = _cursor_pushdown(spec, common["plan"])
    sql = connector.select(
        spec.source, cursor_column, bound, window=steps_partition_reads.source_window(spec, target.part)
    )
    log(f"reading {connector.describe()}: {sql}")
    with connector.stream(sql) as stream:
        for notice in stream.notices:
            log(f"{connector.describe()}: {notice}")
        result, _ = ingest.run_stream(
            con, spec, pipeline=pipeline, reader=stream.reader, type_hints=stream.type_hints, **common
        )
    result.notices += stream.notices
    return result


def _load_from_api(spec: PipelineSpec, pipeline: str, connector, con, common: dict) -> load_result.LoadResult:
    """Page through the endpoint into NDJSON files beside the warehouse, then load the records
    like any other stream: every mapped field as text, converted exactly; without a mapping, each
    field with the type DuckDB finds for it across all records. Incremental: the plan's bound
    (the saved cursor, less the lookback) is sent as the endpoint's lower bound. No records is a
    quiet tick: nothing changes (a replace keeps its table)."""
    import duckdb

    from etl_platform.connectors.formats.json import NdjsonFormat
    from etl_platform.connectors.rest.pagination import RestEndpoint

    log, plan = common["log"], common["plan"]
    endpoint = RestEndpoint.model_validate(spec.source.endpoint)
    since = plan.bound if spec.sync.mode == "incremental" else None
    mapped = bool(spec.source.columns)
    settings.etl_home().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{pipeline}-", dir=settings.etl_home()) as folder:
        fetched = connector.fetch(endpoint, Path(folder), since=since, log=log)
        log(f"{fetched.records:,} record(s) in {fetched.pages} page(s) from {connector.describe()}")
        if not fetched.files and not mapped:
            if plan.replaces_table and common["target"].part is None and not spec.sync.allow_empty:
                raise load_result.LoadFailed(f"{spec.source.label} returned no records; the table was left as it was")
            log("no records: nothing to load")
            return load_result.LoadResult(
                0,
                0,
                0,
                warehouse_tables.Committed(0, cursor_before=plan.cursor_before, cursor_after=plan.cursor_before),
                [],
                {},
                0.0,
                None,
            )
        with duckdb.connect() as reader_db:
            if mapped:
                reader_db.execute(
                    "CREATE TABLE records AS "
                    f"{_mapped_records(reader_db, NdjsonFormat(spec.source.csv), fetched.files, spec)}"
                )
                reader = reader_db.sql("SELECT * FROM records").to_arrow_reader(100_000)
            else:
                paths = ", ".join(literal(str(p)) for p in fetched.files)
                reader = reader_db.sql(f"SELECT * FROM read_ndjson([{paths}], sample_size=-1)").to_arrow_reader(100_000)
            result, _ = ingest.run_stream(con, spec, pipeline=pipeline, reader=reader, type_hints={}, **common)
    return result


def _mapped_records(db, fmt, files: list[Path], spec: PipelineSpec) -> str:
    """The mapped fields of every record, as text, read exactly (numbers with every digit)."""
    wanted = list(dict.fromkeys(c for name, col in spec.source.columns.items() for c in col.source_columns(name)))
    if not files:
        return "SELECT " + ", ".join(f"NULL::VARCHAR AS {quote(c)}" for c in wanted) + " WHERE false"
    scans, offered = [], set()
    for path in files:
        keys, dialect = fmt.inspect(db, path, spec.source.columns)
        offered |= set(keys)
        scans.append(fmt.scan(path, spec.source.columns, None, fmt.prepare(db, path, spec.source.columns, dialect)))
    # A field no record has stays out, so the load names it as missing rather than loading NULLs.
    present = ", ".join(quote(c) for c in wanted if c in offered) or "NULL AS __no_field"
    return " UNION ALL ".join(f"SELECT {present} FROM {scan}" for scan in scans)


def _cursor_pushdown(spec: PipelineSpec, plan: warehouse_state.Plan) -> tuple[str | None, str | None]:
    """For an incremental load: the source column to filter on and the plan's lower bound
    (inclusive). A cursor made by a format or an expression is compared after it is made, never
    as the source's raw text: such a source is read whole, and its rows below the bound skipped."""
    sync = spec.sync
    if sync.mode != "incremental" or not sync.cursor or plan.bound is None:
        return None, None
    column = spec.source.columns.get(sync.cursor)
    if column is not None and column.parsed_in_sql:
        return None, None
    return (column.source or sync.cursor) if column else sync.cursor, plan.bound


# how each read shape of a source (connectors.registry.READ_METHODS) is loaded
_READERS: dict[str, Callable[..., load_result.LoadResult]] = {
    "files": _load_files,
    "sql": _load_rows,
    "rest": _load_from_api,
}
