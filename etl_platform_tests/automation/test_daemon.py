"""A real ``dagster-daemon`` runs a schedule and a file sensor, and their runs succeed."""

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorType, ScheduleInstigatorData
from dagster._core.storage.tags import RUN_KEY_TAG, SCHEDULE_NAME_TAG, SENSOR_NAME_TAG

from etl_platform_tests.conftest import BIN, PROJECT_ROOT, cli

LOCATION = Path(__file__).with_name("daemon_location.py")


def succeeded(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return [
        r for r in instance.get_runs(filters=dg.RunsFilter(job_name=job)) if r.status == dg.DagsterRunStatus.SUCCESS
    ]


def wait_for(
    instance: dg.DagsterInstance, job: str, count: int, deadline: float, daemon_log: Path
) -> list[dg.DagsterRun]:
    while time.monotonic() < deadline:
        runs = succeeded(instance, job)
        if len(runs) >= count:
            return runs
        failed = [
            r for r in instance.get_runs(filters=dg.RunsFilter(job_name=job)) if r.status == dg.DagsterRunStatus.FAILURE
        ]
        assert not failed, f"run {failed[0].run_id} of {job} failed"
        time.sleep(0.5)
    raise AssertionError(
        f"no {count} successful run(s) of {job} in time; daemon log:\n{daemon_log.read_text()[-3000:]}"
    )


def test_the_daemon_runs_a_schedule_and_a_file_sensor(tmp_path):
    home, landing = tmp_path / "dagster_home", tmp_path / "landing"
    home.mkdir()
    landing.mkdir()
    # SQLite storage under DAGSTER_HOME (the default); the queue is looked at every second.
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "  config:\n    dequeue_interval_seconds: 1\ntelemetry:\n  enabled: false\n"
    )
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - python_file:\n      relative_path: {LOCATION}\n      working_directory: {PROJECT_ROOT}\n"
        "      location_name: daemon_test\n"
    )
    for i in range(3):
        (landing / f"day-{i}.csv").write_text(f"id\n{i}\n")
    env = {"DAGSTER_HOME": str(home), "ETL_LANDING_DIR": str(landing), "ETL_HOME": str(tmp_path / "etl_home")}

    # Switch the schedule on, then date its start two minutes back: the daemon's first
    # iteration then runs the latest minute it missed instead of waiting for the next one.
    started = cli(
        "dagster", "schedule", "start", "heartbeat_schedule", "-w", str(workspace), env=env, cwd=home, timeout=120
    )
    assert started.returncode == 0, started.stderr[-2000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [state] = instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
        data = state.instigator_data
        instance.update_instigator_state(
            state.with_data(ScheduleInstigatorData(data.cron_schedule, start_timestamp=time.time() - 120))
        )

        log = tmp_path / "daemon.log"
        with log.open("w") as out:
            daemon = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                cwd=home,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 75
            [first] = wait_for(instance, "landed_job", 1, deadline, log)
            assert first.tags[SENSOR_NAME_TAG] == "landed_file_sensor"
            assert first.tags[RUN_KEY_TAG].startswith("files:") and first.tags["etl/new_files"] == "3"

            dropped = time.monotonic()
            (landing / "late.csv").write_text("id\n99\n")
            runs = wait_for(instance, "landed_job", 2, deadline, log)
            print(f"\nnew file to successful run: {time.monotonic() - dropped:.1f} s")
            assert runs[0].tags["etl/new_files"] == "1"  # newest first: only the new file

            [scheduled, *_] = wait_for(instance, "heartbeat_job", 1, deadline, log)
            assert scheduled.tags[SCHEDULE_NAME_TAG] == "heartbeat_schedule"
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        assert len(succeeded(instance, "landed_job")) == 2  # three files then one: two runs, none twice
