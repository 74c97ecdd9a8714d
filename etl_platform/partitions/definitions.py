"""The Dagster side of a partitioned pipeline: its partitions, backfill policy and schedule."""

import dagster as dg

from etl_platform.spec.partitions import PartitionsSpec

_TIME_PARTITIONS = {
    "hourly": dg.HourlyPartitionsDefinition,
    "daily": dg.DailyPartitionsDefinition,
    "weekly": dg.WeeklyPartitionsDefinition,
    "monthly": dg.MonthlyPartitionsDefinition,
}


def files_partitions_name(pipeline: str) -> str:
    """The dynamic partitions of a per-file pipeline; a sensor adds a file's key here to run it."""
    return f"{pipeline}_files"


def partitions_definition(spec: PartitionsSpec, pipeline: str) -> dg.PartitionsDefinition:
    if not spec.by_time:
        return dg.DynamicPartitionsDefinition(name=files_partitions_name(pipeline))
    return _TIME_PARTITIONS[spec.by](start_date=spec.start_datetime(), timezone=spec.timezone)


def backfill_policy(spec: PartitionsSpec) -> dg.BackfillPolicy:
    return dg.BackfillPolicy.single_run() if spec.backfill == "single_run" else dg.BackfillPolicy.multi_run(1)


def partitioned_schedule(
    partitions_def: dg.TimeWindowPartitionsDefinition, job, *, name: str, cron: str, timezone: str, start_running: bool
) -> dg.ScheduleDefinition:
    """At each cron tick, a run of the latest complete time partition (e.g. at 01:30, yesterday)."""

    @dg.schedule(
        name=name,
        cron_schedule=cron,
        execution_timezone=timezone,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING if start_running else dg.DefaultScheduleStatus.STOPPED,
        description="Loads the latest complete partition.",
    )
    def latest_partition(context: dg.ScheduleEvaluationContext):
        with dg.partition_loading_context(effective_dt=context.scheduled_execution_time):
            key = partitions_def.get_last_partition_key()
        if key is None:
            return dg.SkipReason(f"no complete partition yet (the first starts {partitions_def.start.isoformat()})")
        return dg.RunRequest(partition_key=key)

    return latest_partition
