"""The sensors that send alerts: one on failed runs, one on failed freshness checks."""

import dagster as dg

from etl_platform.automation.alerts import Alert, deliver, summary, ui_url

FRESHNESS_CHECK = "freshness_check"  # the name Dagster gives a last-update freshness check
_SCAN_LIMIT = 500


def pipeline_of(step_key: str | None, job_name: str) -> str:
    """The pipeline a step or job belongs to: steps are '<pipeline>__load', jobs '<pipeline>_job'."""
    if step_key and "__" in step_key:
        return step_key.split("__", 1)[0]
    return job_name.removesuffix("_job")


def watches(spec, pipeline: str) -> bool:
    return spec.pipelines is None or pipeline in spec.pipelines


def run_failure_alert(context: dg.RunFailureSensorContext) -> Alert:
    run = context.dagster_run
    failures = context.get_step_failure_events()
    if failures:
        first = failures[0]
        step = ", ".join(e.step_key or "?" for e in failures)
        error = first.event_specific_data.error
        while error is not None and error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
            error = error.cause  # the step's own error, not Dagster's wrapper around it
        message = error.message if error else first.message or "step failed"
    else:  # the run failed outside any step (it could not start, its process crashed, ...)
        step, message = "(run)", context.failure_event.message or "run failed"
    pipeline = pipeline_of(failures[0].step_key if failures else None, run.job_name)
    return Alert(
        subject=f"[etl] {pipeline}: run failed",
        pipeline=pipeline,
        step=step,
        error=summary(message),
        link=f"{ui_url()}/runs/{run.run_id}",
    )


def run_failure_alerts(spec, name: str = "alert_on_run_failure") -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=name,
        minimum_interval_seconds=spec.min_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Emails and/or posts to a webhook when a pipeline's run fails (see defs/alerts/defs.yaml).",
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
        alert = run_failure_alert(context)
        if not watches(spec, alert.pipeline):
            return
        reached = deliver(spec, alert, context.log.warning)
        context.log.info(f"alert for run {context.dagster_run.run_id}: sent by {', '.join(reached) or 'no channel'}")

    return alert_on_run_failure


def stale_table_alert(evaluation, timestamp: float) -> Alert | None:
    """The alert for one failed freshness check evaluation, or None for any other check result."""
    if evaluation.check_name != FRESHNESS_CHECK or evaluation.passed:
        return None
    metadata = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
    last = metadata.get("dagster/last_updated_timestamp")
    key = evaluation.asset_key
    details = "never loaded" if last is None else f"last loaded {_ago(last, timestamp)} ago"
    if evaluation.description:  # Dagster's own words: "Asset is overdue. Expected an update within ..."
        details += f". {evaluation.description}"
    pipeline = key.path[0]  # the table's schema, which is the pipeline's name unless set otherwise
    return Alert(
        subject=f"[etl] {pipeline}: table {key.to_user_string()} is stale",
        pipeline=pipeline,
        step=FRESHNESS_CHECK,
        error=summary(f"freshness check failed: {details}"),
        link=f"{ui_url()}/assets/{'/'.join(key.path)}?view=checks",
    )


def _ago(then: float, now: float) -> str:
    hours = max(0.0, now - float(then)) / 3600
    return f"{hours:.1f} h"


def stale_table_alerts(spec, name: str = "alert_on_stale_tables") -> dg.SensorDefinition:
    """Alerts for every failed freshness check, looked up in each run that finishes.

    A failed check does not fail its run, so this watches successful runs; Dagster does not
    evaluate a failed freshness check again until the table is loaded, so one alert each time.
    """

    @dg.run_status_sensor(
        name=name,
        run_status=dg.DagsterRunStatus.SUCCESS,
        minimum_interval_seconds=spec.min_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Emails and/or posts to a webhook when a table's freshness check fails (see defs/alerts/defs.yaml)."
        ),
    )
    def alert_on_stale_tables(context: dg.RunStatusSensorContext) -> None:
        from dagster import DagsterEventType

        records = context.instance.get_records_for_run(
            context.dagster_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=_SCAN_LIMIT
        ).records
        for record in records:
            evaluation = record.event_log_entry.dagster_event.event_specific_data
            alert = stale_table_alert(evaluation, record.timestamp)
            if alert is not None and watches(spec, alert.pipeline):
                deliver(spec, alert, context.log.warning)

    return alert_on_stale_tables
