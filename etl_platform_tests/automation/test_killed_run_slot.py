"""A run killed with ``kill -9`` while it holds the warehouse's pool slot does not block later runs.

A real ``dagster-daemon`` on a temporary DAGSTER_HOME with the project's ``dagster.yaml`` (SQLite
storage, the queued run coordinator, the pool of one slot, run monitoring): a run of ``slow``
(slot_location.py) is launched and holds the ``duckdb_warehouse`` slot while its load step waits
on an HTTP server of this test; its run worker is killed with SIGKILL; then a run of another
pipeline is launched and must finish within a bounded time, the killed run marked failed and
retried.
"""

import os
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
import yaml

from etl_platform.resources.warehouse import WAREHOUSE_POOL
from etl_platform_tests.conftest import BIN, PROJECT_ROOT

LOCATION = Path(__file__).with_name("slot_location.py")
# dagster.yaml promises the slot back within about 11 s of the kill (run monitoring looks every
# 5 s and frees the slots of runs over for 5 s); the rest is room for a busy machine.
SLOT_FREED_WITHIN_SECONDS = 30
# The next run then waits for the killed run's retry and starts a run worker of its own, which
# loads the code location: seconds on an idle machine, a minute or more on a loaded one.
NEXT_RUN_DONE_WITHIN_SECONDS = 180


class SlowApi(ThreadingHTTPServer):
    """Holds the first request until ``release`` is set; answers every later one at once."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.first_request = threading.Event()
        self.release = threading.Event()
        self.requests = 0


class _Handler(BaseHTTPRequestHandler):
    server: SlowApi

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.server.requests += 1
        if not self.server.first_request.is_set():
            self.server.first_request.set()
            self.server.release.wait(120)
        body = b'[{"id": 1, "name": "one"}]'
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the killed run's request: nobody is reading any more


def runs_of(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job)))


def wait_until(condition, deadline: float, what: str, daemon_log: Path):
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"{what} did not happen in time; daemon log:\n{daemon_log.read_text()[-4000:]}")


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The run worker's process id, from the engine event it logs when it starts."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = record.dagster_event.engine_event_data.metadata or {}
        if "pid" in metadata and "Started process for run" in (record.message or ""):
            return int(metadata["pid"].value)
    return None


def launch(job: str, workspace: Path, env: dict, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", job],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def launched(process: subprocess.Popen) -> None:
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output[-2000:]


def test_a_run_killed_while_it_holds_the_warehouse_slot_does_not_block_the_next_run(tmp_path):
    home, etl_home = tmp_path / "dagster_home", tmp_path / "etl_home"
    home.mkdir()
    (etl_home / "landing" / "quick").mkdir(parents=True)
    (etl_home / "landing" / "quick" / "a.csv").write_text("id\n1\n2\n")
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")  # the project's settings, unchanged
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - python_file:\n      relative_path: {LOCATION}\n      working_directory: {PROJECT_ROOT}\n"
        "      location_name: slot_test\n"
    )
    api = SlowApi()
    threading.Thread(target=api.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    env = {
        "DAGSTER_HOME": str(home),
        "ETL_HOME": str(etl_home),
        "ETL_LANDING_DIR": str(etl_home / "landing"),
        "ETL_WAREHOUSE_PATH": str(etl_home / "warehouse.duckdb"),
        "ETL_TEST_SLOW_API": f"http://127.0.0.1:{api.server_port}",
    }

    log = tmp_path / "daemon.log"
    with dg.DagsterInstance.from_config(str(home)) as instance, log.open("w") as out:
        first = launch("slow_job", workspace, env, home)
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=home,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            launched(first)
            deadline = time.monotonic() + 120
            wait_until(lambda: api.first_request.wait(0.25), deadline, "the slow load step starting", log)
            [killed] = runs_of(instance, "slow_job")
            holders = {
                slot.run_id for slot in instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
            }
            assert holders == {killed.run_id}, "the slow run should hold the pool's one slot"
            pid = wait_until(lambda: worker_pid(instance, killed.run_id), deadline, "the run worker's pid", log)

            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            second = launch("quick_job", workspace, env, home)

            def slot_freed() -> bool:
                claims = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
                return killed.run_id not in {slot.run_id for slot in claims}

            wait_until(slot_freed, killed_at + SLOT_FREED_WITHIN_SECONDS, "the killed run's slot being freed", log)
            freed_after = time.monotonic() - killed_at
            assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
            launched(second)

            def quick_run_done():
                runs = runs_of(instance, "quick_job")
                assert not any(r.status == dg.DagsterRunStatus.FAILURE for r in runs), "the quick run failed"
                return [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]

            wait_until(quick_run_done, killed_at + NEXT_RUN_DONE_WITHIN_SECONDS, "the next run finishing", log)
            print(
                f"\nkill -9 to the slot freed: {freed_after:.1f} s; to the next run's success: "
                f"{time.monotonic() - killed_at:.1f} s"
            )

            # Dagster retries a run whose worker crashed (run_retries in dagster.yaml).
            retries = [r for r in runs_of(instance, "slow_job") if r.tags.get("dagster/parent_run_id") == killed.run_id]
            assert len(retries) == 1
        finally:
            api.release.set()
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
            api.shutdown()
            api.server_close()


@pytest.mark.parametrize("path", ["dagster.yaml", "deploy/dagster.yaml"])
def test_both_instances_free_a_dead_runs_slot_as_the_readme_says(path):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config_schema

    monitoring = yaml.safe_load((PROJECT_ROOT / path).read_text())["run_monitoring"]
    assert process_config(dagster_instance_config_schema()["run_monitoring"].config_type, monitoring).success
    assert monitoring["enabled"]
    poll, after = monitoring["poll_interval_seconds"], monitoring["free_slots_after_run_end_seconds"]
    assert 0 < after and 0 < poll and poll + after <= 45
    readme = " ".join((PROJECT_ROOT / "README.md").read_text().split())
    if path == "dagster.yaml":
        assert f"it looks every {poll} s and frees the slots of runs over for {after} s" in readme
        assert f"within about {poll + after + 1} s of the kill" in readme
    else:
        assert (
            f"the daemon looks every {poll} s and waits {after} s" in readme and f"at most {poll + after} s" in readme
        )
