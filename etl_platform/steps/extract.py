"""Read a pipeline's source the way its kind reads, and load what it read.

The one entry point of a load, without Dagster: the load asset calls it, and so can a test
or a tool that needs a pipeline's exact behaviour. Files go through ``ingest.run``; tables,
queries and API records through ``ingest.run_stream``.
"""

import tempfile
from collections.abc import Callable
from pathlib import Path

from etl_platform import settings
from etl_platform.destinations import Destination
from etl_platform.partitions import runs as partition_runs
from etl_platform.spec import PipelineSpec
from etl_platform.sql import literal, quote
from etl_platform.steps import ingest


def load_source(
    spec: PipelineSpec,
    *,
    pipeline: str,
    connector,
    con,
    target: ingest.Target,
    run_id: str,
    log: Callable[[str], None],
    progress_interval: float | None = None,
) -> ingest.LoadResult:
    """Read the source of ``spec`` through ``connector`` and load it into ``target``; returns the load's result."""
    interval = settings.progress_interval_seconds() if progress_interval is None else progress_interval
    common = dict(target=target, run_id=run_id, log=log, progress_interval=interval)
    src = spec.source
    if src.reads == "files":
        with connector.fetch(src.files) as found:
            log(f"{len(found.files)} file(s) match '{src.files}' in {found.location}")
            if not found.files and spec.sync.mode == "replace":
                raise ingest.LoadFailed(
                    f"No files match '{src.files}' in {found.location}; {target.table} was left as it was "
                    "(replace never swaps in an empty load)."
                )
            files = partition_runs.files_of_run(found.files, found.relative, target.part, found.location)
            return ingest.run(con, spec, pipeline=pipeline, files=files, relative=found.relative, **common)
    if src.reads == "sql":
        cursor_column, bound = _cursor_pushdown(spec, con, pipeline, target.committer)
        sql = connector.select(src, cursor_column, bound, window=partition_runs.source_window(spec, target.part))
        log(f"reading {connector.describe()}: {sql}")
        with connector.stream(sql) as stream:
            for notice in stream.notices:
                log(f"{connector.describe()}: {notice}")
            result, _ = ingest.run_stream(con, spec, pipeline=pipeline, reader=stream.reader, type_hints=stream.type_hints, **common)
        return result
    return _load_from_api(spec, pipeline, connector, con, common)


def _load_from_api(spec: PipelineSpec, pipeline: str, connector, con, common: dict) -> ingest.LoadResult:
    """Page through the endpoint into NDJSON files beside the warehouse, then load the records
    (typed by DuckDB from all of them) like any other stream. Incremental: the saved cursor
    is sent as the endpoint's lower bound."""
    import duckdb

    from etl_platform.connectors.rest import RestEndpoint

    log = common["log"]
    endpoint = RestEndpoint.model_validate(spec.source.endpoint)
    since = common["target"].committer.saved_cursor(con, pipeline) if spec.sync.mode == "incremental" else None
    settings.etl_home().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{pipeline}-", dir=settings.etl_home()) as folder:
        fetched = connector.fetch(endpoint, Path(folder), since=since, log=log)
        log(f"{fetched.records:,} record(s) in {fetched.pages} page(s) from {connector.describe()}")
        if not fetched.files:
            # A partition's window may hold no records (a quiet day, or all of it deleted at the
            # source): its load empties the partition, as a SQL source's empty window does.
            empty_window = common["target"].part is not None and bool(spec.source.columns)
            if spec.sync.mode == "replace" and not empty_window:
                raise ingest.LoadFailed(f"{spec.source.label} returned no records; the table was left as it was")
            columns = [quote(c.source or name) for name, c in spec.source.columns.items()] if empty_window else ["__empty"]
            files_sql = f"(SELECT {', '.join(f'NULL::VARCHAR AS {c}' for c in columns)} WHERE false)"
        else:
            paths = ", ".join(literal(str(p)) for p in fetched.files)
            files_sql = f"read_ndjson([{paths}], sample_size=-1)"
        with duckdb.connect() as reader_db:
            reader = reader_db.sql(f"SELECT * FROM {files_sql}").to_arrow_reader(100_000)
            result, _ = ingest.run_stream(con, spec, pipeline=pipeline, reader=reader, type_hints={}, **common)
    return result


def _cursor_pushdown(spec: PipelineSpec, con, pipeline: str, destination: Destination) -> tuple[str | None, str | None]:
    """For an incremental load: the source column to filter on and the saved cursor (inclusive)."""
    sync = spec.sync
    if sync.mode != "incremental" or not sync.cursor:
        return None, None
    column = spec.source.columns.get(sync.cursor)
    return (column.source or sync.cursor) if column else sync.cursor, destination.saved_cursor(con, pipeline)
