"""What one run of a partitioned pipeline reads and replaces.

A run has one partition (or, in a single-run backfill, a range of time partitions). Its
slice is what the load replaces: the rows whose column is in the window, or the rows of
one source file. The source is asked for no more than the slice: a SQL source filters
its query, a REST source gets the window's bounds as parameters, a per-file run reads
only its file."""

from dataclasses import dataclass

import dagster as dg

from etl_platform.destinations.base import Destination
from etl_platform.destinations.warehouse import state as warehouse_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.partitions import PartitionsSpec
from etl_platform.spec.pipeline import PipelineSpec, RuleSpec

SOURCE_FILE = "_source_file"


def slice_of_run(context: dg.AssetExecutionContext, part: PartitionsSpec) -> warehouse_tables.Slice:
    """The rows this run replaces."""
    if not part.by_time:
        key = context.partition_key
        return warehouse_tables.Slice(column=SOURCE_FILE, label=key, value=key)
    window = context.partition_time_window
    keys = context.partition_key_range
    label = keys.start if keys.start == keys.end else f"{keys.start}...{keys.end}"
    return warehouse_tables.Slice(column=part.column, label=label, start=window.start, end=window.end)


def spec_for_run(spec: PipelineSpec, part: warehouse_tables.Slice | None) -> PipelineSpec:
    """The spec as this run reads: a REST endpoint asked for the window, and rows without a
    value in the partition column rejected (they belong to no partition)."""
    partitions = spec.partitions
    if part is None or part.value is not None or partitions is None:
        return spec
    rules = [*spec.rules, RuleSpec(name=f"{part.column} is empty (no partition)", not_null=[part.column])]
    source = spec.source
    if partitions.start_param is not None and source.endpoint is not None:
        fmt = partitions.param_format
        start, end = (b.strftime(fmt) if fmt else b.isoformat() for b in (part.start, part.end))
        params = {**(source.endpoint.get("params") or {}), partitions.start_param: start, partitions.end_param: end}
        source = source.model_copy(update={"endpoint": {**source.endpoint, "params": params}})
    return spec.model_copy(update={"rules": rules, "source": source})


@dataclass(frozen=True)
class SliceOf:
    """A destination whose commit replaces one partition's rows (``Destination.replace_slice``)."""

    destination: Destination
    part: warehouse_tables.Slice

    @property
    def two_phase(self) -> bool:
        return self.destination.two_phase

    def __str__(self) -> str:
        return f"partition {self.part.label} of {self.destination}"

    def state(self, duck, pipeline):
        return warehouse_state.State()  # partitioned loads keep no cursor: the partition says what to read

    def saved_cursor(self, duck, pipeline):
        return None

    def commit(self, duck, stage, plan, *, pipeline, run_id, data_columns, schema_changes):
        return self.destination.replace_slice(
            duck,
            stage,
            self.part,
            pipeline=pipeline,
            run_id=run_id,
            load_id=plan.load_id,
            schema_changes=schema_changes,
        )

    def replace_slice(self, duck, stage, part, *, pipeline, run_id, load_id, schema_changes):
        return self.destination.replace_slice(
            duck, stage, part, pipeline=pipeline, run_id=run_id, load_id=load_id, schema_changes=schema_changes
        )

    def cannot_hold(self, columns):
        return self.destination.cannot_hold(columns)

    def finish(self):
        self.destination.finish()

    def abandon(self):
        self.destination.abandon()

    def committed_loads(self, duck, pipeline, load_ids):
        return self.destination.committed_loads(duck, pipeline, load_ids)

    def summary(self, duck):
        return self.destination.summary(duck)

    def reset_state(self, duck, pipeline, to):
        return self.destination.reset_state(duck, pipeline, to)

    def history(self, duck, pipeline, limit=100):
        return self.destination.history(duck, pipeline, limit)


def partition_metadata(part: warehouse_tables.Slice, committed: warehouse_tables.Committed) -> dict:
    """What the materialization records about the partition's warehouse_tables. rows_read, rows_accepted
    and rows_rejected count the partition's rows (and rows of no partition, which are
    rejected); rows_outside_partition counts the rows read that belong to other time
    partitions: left out, neither checked, rejected nor loaded by this run."""
    metadata: dict = {
        "partition": part.label,
        "rows_deleted": committed.rows_deleted,
        "rows_inserted": committed.rows_written,
    }
    if part.start is not None:
        metadata |= {
            "window_start": part.start.isoformat(),
            "window_end": part.end.isoformat(),
            "rows_outside_partition": committed.rows_outside,
        }
    return metadata
