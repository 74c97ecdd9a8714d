"""Checks of a pipeline's ``partitions`` section that need the rest of the spec. Run when
definitions load (from ``spec_checks.check_pipeline``), so `dg check defs` reports them."""

import difflib

from etl_platform.destinations.registry import DESTINATION_KINDS, destination_class
from etl_platform.spec.errors import SpecLocator
from etl_platform.spec.pipeline import PipelineSpec

_TIME_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")


def check_partitions(spec: PipelineSpec, locate: SpecLocator, kinds: dict[str, str]) -> None:
    part = spec.partitions
    if part is None:
        return
    if spec.sync.mode != "replace":
        raise locate.error(
            ["sync", "mode"],
            f"a partitioned pipeline replaces one partition's rows per load; sync mode {spec.sync.mode!r} does not "
            "apply (leave sync out, or set mode: replace)",
        )
    dest = spec.destination
    kind = kinds.get(dest.connection)
    if kind in DESTINATION_KINDS and destination_class(kind).writes_files:
        raise locate.error(
            ["partitions"],
            f"destination {dest.connection!r} is a folder of files, which is rewritten whole on every load; partitions "
            "need the warehouse or a PostgreSQL destination (for sub-folders by value use destination.partition_by)",
        )
    if part.by == "file":
        _check_per_file(spec, locate)
    else:
        _check_time(spec, locate)


def _check_per_file(spec: PipelineSpec, locate: SpecLocator) -> None:
    if spec.source.reads != "files":
        raise locate.error(
            ["partitions", "by"],
            f"per-file partitions need a file source (source.files); this source reads a {spec.source.reads} "
            "source: use time partitions (daily, ...) with a date column",
        )
    if not spec.destination.lineage_columns:
        raise locate.error(
            ["destination", "lineage_columns"],
            "per-file partitions find a file's rows by their _source_file column: lineage_columns must be true",
        )
    if spec.triggers.cron:
        raise locate.error(
            ["triggers", "cron"],
            "a per-file partitioned pipeline runs once per file (when it arrives, or in a backfill); a cron "
            "schedule would have no file to run: remove cron",
        )


def _check_time(spec: PipelineSpec, locate: SpecLocator) -> None:
    part, src = spec.partitions, spec.source
    columns = src.columns
    if columns:  # otherwise the columns are the source's, known when it is read
        if part.column not in columns:
            close = difflib.get_close_matches(part.column, list(columns), n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise locate.error(["partitions", "column"], f"'{part.column}' is not a target column{hint}")
        dtype = columns[part.column].duckdb_type
        if dtype not in _TIME_TYPES:
            raise locate.error(
                ["partitions", "column"],
                f"'{part.column}' is a {dtype.lower()} column; time partitions need a date, timestamp or timestamptz "
                "column",
            )
    if src.reads == "rest" and part.start_param is None:
        raise locate.error(
            ["partitions"], "a REST source is asked for one window at a time: set start_param and end_param"
        )
    if src.reads != "rest" and part.start_param is not None:
        raise locate.error(["partitions", "start_param"], "start_param and end_param are for REST sources")
