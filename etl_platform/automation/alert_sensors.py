"""The sensors that send alerts: one on failed runs, one on tables whose freshness fails."""

import json
import time

import dagster as dg

from etl_platform.automation.alerts import Alert, deliver, summary, ui_url


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


def stale_table_alert(key: dg.AssetKey, fail_hours: float, last_loaded: float | None, now: float) -> Alert:
    """The alert for a table whose freshness policy has turned to FAIL."""
    details = "never loaded" if last_loaded is None else f"last loaded {_ago(last_loaded, now)} ago"
    pipeline = key.path[0]  # the table's schema, which is the pipeline's name unless set otherwise
    return Alert(
        subject=f"[etl] {pipeline}: table {key.to_user_string()} is stale",
        pipeline=pipeline,
        step="freshness",
        error=summary(f"freshness FAIL: {details}; it is expected to load at least every {fail_hours:g} h"),
        link=f"{ui_url()}/assets/{'/'.join(key.path)}",
    )


def _ago(then: float, now: float) -> str:
    hours = max(0.0, now - float(then)) / 3600
    return f"{hours:.1f} h"


def stale_table_alerts(spec, name: str = "alert_on_stale_tables") -> dg.SensorDefinition:
    """Alerts for every table whose freshness policy turned to FAIL, once per failure.

    The daemon evaluates each table's freshness policy and records the table's freshness state;
    this sensor reads the latest state of the tables that have a policy and alerts on a FAIL it has
    not alerted yet. The cursor holds, per failing table, when its failure began.
    """

    @dg.sensor(
        name=name,
        minimum_interval_seconds=spec.min_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Emails and/or posts to a webhook when a table's freshness turns to FAIL "
        "(see defs/alerts/defs.yaml).",
    )
    def alert_on_stale_tables(context: dg.SensorEvaluationContext) -> dg.SkipReason | None:
        policies = {
            node.key: node.freshness_policy
            for node in context.repository_def.asset_graph.asset_nodes
            if node.freshness_policy is not None
        }
        if not policies:
            return dg.SkipReason("no table has a freshness policy")
        alerted = json.loads(context.cursor or "{}")
        now = time.time()
        for key, record in context.instance.get_freshness_state_records(list(policies)).items():
            table = key.to_user_string()
            if record.freshness_state != "FAIL":
                alerted.pop(table, None)
                continue
            since = record.updated_at.timestamp()
            if alerted.get(table) == since:
                continue
            latest = context.instance.get_latest_materialization_event(key)
            fail_hours = policies[key].fail_window.to_timedelta().total_seconds() / 3600
            alert = stale_table_alert(key, fail_hours, latest.timestamp if latest else None, now)
            if watches(spec, alert.pipeline):
                deliver(spec, alert, context.log.warning)
            alerted[table] = since
        context.update_cursor(json.dumps(alerted, sort_keys=True))
        return None

    return alert_on_stale_tables
