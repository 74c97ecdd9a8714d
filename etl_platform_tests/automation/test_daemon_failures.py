"""A real ``dagster-daemon``: a file whose load fails is listed by files_not_loaded, is not run
again while it stays as it is, and loads once it is replaced."""

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg

from etl_platform.automation.not_loaded import CHECK_NAME, latest_report
from etl_platform.automation.outcomes import CLOCK_MARGIN_SECONDS
from etl_platform_tests.conftest import BIN, PROJECT_ROOT

LOCATION = Path(__file__).with_name("daemon_failures_location.py")
CHECK = dg.AssetCheckKey(dg.AssetKey(["landed", "source_files"]), CHECK_NAME)


def runs(instance: dg.DagsterInstance, status: dg.DagsterRunStatus) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs(filters=dg.RunsFilter(job_name="landed_job")) if r.status == status]


def wait_until(what: str, condition, deadline: float, daemon_log: Path):
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {what} in time; daemon log:\n{daemon_log.read_text()[-3000:]}")


def test_the_daemon_lists_a_file_that_failed_to_load_and_loads_it_once_replaced(tmp_path):
    home, landing = tmp_path / "dagster_home", tmp_path / "landing"
    home.mkdir()
    landing.mkdir()
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "  config:\n    dequeue_interval_seconds: 1\ntelemetry:\n  enabled: false\n"
    )
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - python_file:\n      relative_path: {LOCATION}\n      working_directory: {PROJECT_ROOT}\n"
        "      location_name: daemon_failures_test\n"
    )
    (landing / "good.csv").write_text("id\n1\n")
    (landing / "orders.csv").write_text("id\nbad\n")
    env = {"DAGSTER_HOME": str(home), "ETL_LANDING_DIR": str(landing), "ETL_HOME": str(tmp_path / "etl_home")}
    with dg.DagsterInstance.from_config(str(home)) as instance:
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
            deadline = time.monotonic() + 240  # generous: the daemon and each run start their own Python
            [failed] = wait_until("failed run", lambda: runs(instance, dg.DagsterRunStatus.FAILURE), deadline, log)
            report = wait_until(
                "failing check", lambda: (r := latest_report(instance, CHECK)) and not r.passed and r, deadline, log
            )
            files = {f["file"]: f for f in report.metadata["files"].value}
            assert sorted(files) == ["good.csv", "orders.csv"]  # one batch: neither loaded
            assert (
                files["orders.csv"]["run_id"] == failed.run_id
                and "orders.csv: line 2: 'bad'" in files["orders.csv"]["error"]
            )

            time.sleep(max(CLOCK_MARGIN_SECONDS, 3))  # some looks with nothing changed: nothing asked for
            assert len(instance.get_runs(filters=dg.RunsFilter(job_name="landed_job"))) == 1
            (tmp_path / "orders.csv").write_text("id\n2\n")
            (tmp_path / "orders.csv").replace(landing / "orders.csv")  # replaced in one step, as a copy tool does
            replaced = time.monotonic()
            [loaded] = wait_until("successful run", lambda: runs(instance, dg.DagsterRunStatus.SUCCESS), deadline, log)
            wait_until("passing check", lambda: (r := latest_report(instance, CHECK)) and r.passed, deadline, log)
            print(f"\nreplaced file to passing check: {time.monotonic() - replaced:.1f} s")
            assert loaded.tags["etl/new_files"] == "1" and loaded.tags["etl/file"] == "orders.csv"
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        assert len(instance.get_runs(filters=dg.RunsFilter(job_name="landed_job"))) == 2
