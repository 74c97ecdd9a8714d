"""Files whose run failed for good: the file sensor follows its runs, lists such files in the
check files_not_loaded, and runs them again when they are dropped again or a retry is asked for,
never by itself. Real runs, executed in process against a real instance."""

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
from dagster._core.utils import make_new_run_id

from etl_platform.automation.file_retries import request_retry, source_files_key
from etl_platform.automation.listing import LocalListing
from etl_platform.automation.not_loaded import CHECK_NAME, files_not_loaded_check, latest_report
from etl_platform.automation.outcomes import CLOCK_MARGIN_SECONDS
from etl_platform.automation.sensors import FileWatch, file_sensor
from etl_platform.connectors.landing import LocalFolder
from etl_platform_tests.automation.test_file_sensor import Ticker, drop

PER_FILE, BATCH = "landed", "batched"
FILES = dg.DynamicPartitionsDefinition(name="landed_files")
CANARY = "canary-7f3c19"


def load_file(name: str) -> None:
    """What the tests' loads do with one file: a bad row fails it, a server down fails every file."""
    body = (Path(os.environ["LANDED_ROOT"]) / name).read_text()
    if os.environ.get("LANDED_DOWN"):
        raise ConnectionError(f"could not connect to postgresql://loader:{CANARY}@127.0.0.1:1/warehouse")
    if "bad" in body:
        raise ValueError(f"{name}: line 2: 'bad' is not a number")


@dg.asset(key=[PER_FILE, "table"], deps=[source_files_key(PER_FILE)], partitions_def=FILES)
def landed_table(context: dg.AssetExecutionContext) -> None:
    load_file(context.partition_key)


@dg.asset(key=[BATCH, "table"], deps=[source_files_key(BATCH)])
def batched_table() -> None:
    for path in sorted((Path(os.environ["LANDED_ROOT"]) / "in").glob("*.csv")):
        load_file(f"in/{path.name}")


DEFS = dg.Definitions(
    assets=[
        dg.AssetSpec(source_files_key(PER_FILE)),
        dg.AssetSpec(source_files_key(BATCH)),
        landed_table,
        batched_table,
    ],
    asset_checks=[files_not_loaded_check(source_files_key(p), f"{p}_file_sensor") for p in (PER_FILE, BATCH)],
    jobs=[
        dg.define_asset_job("landed_job", selection=[landed_table]),
        dg.define_asset_job("batched_job", selection=[batched_table]),
        dg.define_asset_job(
            "landed_check", selection=dg.AssetSelection.checks(dg.AssetCheckKey(source_files_key(PER_FILE), CHECK_NAME))
        ),
    ],
)


def watch_for(pipeline: str, **limits) -> FileWatch:
    return FileWatch(
        pipeline=pipeline,
        pattern="in/*.csv",
        job_name=f"{pipeline}_job",
        partitions_def_name="landed_files" if pipeline == PER_FILE else None,
        settle_seconds=0,
        source_key=source_files_key(pipeline),
        table_key=dg.AssetKey([pipeline, "table"]),
        **limits,
    )


class Daemon(Ticker):
    """The sensor ticked as the daemon does: its check evaluations recorded, its partitions added,
    and the runs it asks for launched (once per run key) and executed in process."""

    def __init__(self, pipeline: str, root: Path, instance: dg.DagsterInstance):
        watch = watch_for(pipeline)
        self.job = DEFS.resolve_job_def(watch.job_name)
        self.check_key = watch.check_key
        sensor = file_sensor(watch, lambda context: LocalListing(LocalFolder(root)), job=self.job)
        super().__init__(sensor, instance)

    def tick(self) -> list[dg.RunRequest]:
        requests = super().tick()
        for event in self.result.asset_events or []:
            self.instance.report_runless_asset_event(event)
        for added in self.result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(added.partitions_def_name, added.partition_keys)
        return requests

    def run(self, requests: list[dg.RunRequest]) -> list[dg.ExecuteInProcessResult]:
        results = []
        for request in requests:
            tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: self.sensor.name}
            results.append(
                self.job.execute_in_process(
                    instance=self.instance, tags=tags, partition_key=request.partition_key, raise_on_error=False
                )
            )
        return results

    def report(self) -> dg.AssetCheckEvaluation:
        return latest_report(self.instance, self.check_key)

    def not_loaded(self) -> dict[str, dict]:
        report = self.report()
        assert report.severity == dg.AssetCheckSeverity.WARN
        files = {f["file"]: f for f in report.metadata["files"].value}
        assert report.passed == (not files) and report.metadata["files_not_loaded"].value == len(files)
        return files

    def reports(self) -> int:
        return len(self.instance.event_log_storage.get_asset_check_execution_history(self.check_key, limit=1000))


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "in").mkdir()
    monkeypatch.setenv("LANDED_ROOT", str(tmp_path))
    monkeypatch.delenv("LANDED_DOWN", raising=False)
    return tmp_path


def redrop(path: Path) -> None:
    """The same bytes copied in again: only the modification time changes."""
    later = time.time() + 1
    os.utime(path, (later, later))


def test_a_file_whose_run_failed_runs_again_once_it_is_replaced_and_not_before(root, instance):
    daemon = Daemon(PER_FILE, root, instance)
    drop(root, "good.csv", "id\n1\n")
    drop(root, "orders.csv", "id\nbad\n")
    first = {r.partition_key: r for r in daemon.tick()}
    results = dict(zip(first, daemon.run(list(first.values()))))
    assert results["in/good.csv"].success and not results["in/orders.csv"].success
    assert daemon.tick() == []
    [failed] = daemon.not_loaded().values()
    assert failed["file"] == "in/orders.csv" and failed["run_id"] == results["in/orders.csv"].run_id
    assert "in/orders.csv: line 2: 'bad' is not a number" in failed["error"]

    # Nothing changed: not asked for again, and the check is not reported again either.
    reports = daemon.reports()
    assert [daemon.tick() for _ in range(3)] == [[], [], []] and daemon.reports() == reports

    drop(root, "orders.csv", "id\n2\n")  # fixed at the source and replaced
    [again] = daemon.tick()
    assert again.partition_key == "in/orders.csv" and again.run_key != first["in/orders.csv"].run_key
    assert [r.success for r in daemon.run([again])] == [True]
    assert daemon.tick() == [] and daemon.not_loaded() == {}


def test_the_same_bytes_dropped_again_after_a_failed_run_run_again_under_a_new_run_key(root, instance, monkeypatch):
    daemon = Daemon(PER_FILE, root, instance)
    path = drop(root, "orders.csv", "id\n1\n")
    monkeypatch.setenv("LANDED_DOWN", "1")  # the destination is down past the retries
    [first] = daemon.tick()
    assert not daemon.run([first])[0].success
    assert daemon.tick() == []
    [failed] = daemon.not_loaded().values()
    assert "could not connect to postgresql://loader:" in failed["error"]
    assert CANARY not in json.dumps(failed) and CANARY not in daemon.report().description  # secrets masked

    monkeypatch.delenv("LANDED_DOWN")
    redrop(path)
    [again] = daemon.tick()
    assert again.run_key == first.run_key + ":retry-1" and again.partition_key == "in/orders.csv"
    assert daemon.run([again])[0].success
    assert daemon.tick() == [] and daemon.not_loaded() == {}


def test_a_retry_asked_for_runs_the_named_failed_files_again(root, instance, monkeypatch, tmp_path_factory):
    from etl_platform.cli import main as cli

    daemon = Daemon(PER_FILE, root, instance)
    for name in ("a.csv", "b.csv", "c.csv"):
        drop(root, name, f"id\n{name}\n")
    monkeypatch.setenv("LANDED_DOWN", "1")
    first = daemon.tick()
    assert not any(r.success for r in daemon.run(first))
    assert daemon.tick() == [] and sorted(daemon.not_loaded()) == ["in/a.csv", "in/b.csv", "in/c.csv"]
    monkeypatch.delenv("LANDED_DOWN")  # the server is back

    # The command, against the instance the daemon uses, while it runs.
    defs = tmp_path_factory.mktemp("defs")
    (defs / "pipelines" / PER_FILE).mkdir(parents=True)
    (defs / "pipelines" / PER_FILE / "defs.yaml").write_text(
        "type: etl_platform.components.Pipeline\nattributes:\n  source: {files: 'in/*.csv', columns: {id: {type: "
        "varchar}}}\n"
        "  destination: {table: landed}\n  partitions: {by: file}\n  triggers: {on_new_files: true}\n"
    )
    monkeypatch.setenv("DAGSTER_HOME", instance.root_directory)
    assert (
        cli.main(["files", "retry", PER_FILE, "--file", "in/a.csv", "--file", "in/nowhere.csv", "--defs", str(defs)])
        == 0
    )
    [retried] = daemon.tick()
    assert retried.partition_key == "in/a.csv" and retried.run_key.endswith(":retry-1")
    assert daemon.run([retried])[0].success
    assert daemon.tick() == [] and sorted(daemon.not_loaded()) == ["in/b.csv", "in/c.csv"]

    request_retry(instance, PER_FILE, None)  # every file that did not load
    assert sorted(r.partition_key for r in daemon.tick()) == ["in/b.csv", "in/c.csv"]
    assert daemon.tick() == []  # a request is read once

    assert cli.main(["files", "retry", "nowhere", "--defs", str(defs)]) == 2
    assert cli.main(["files", "retry", "marketing_campaigns"]) == 2  # a pipeline without a file sensor


def test_a_batch_with_one_bad_file_lists_all_of_its_files_and_loads_them_once_it_is_replaced(root, instance):
    daemon = Daemon(BATCH, root, instance)
    for i in range(20):
        drop(root, f"f{i:02d}.csv", "id\nbad\n" if i == 7 else f"id\n{i}\n")
    [batch] = daemon.tick()
    assert batch.tags["etl/new_files"] == "20"
    [result] = daemon.run([batch])
    assert not result.success
    assert daemon.tick() == []
    not_loaded = daemon.not_loaded()
    assert sorted(not_loaded) == [f"in/f{i:02d}.csv" for i in range(20)]  # one run: none of them loaded
    assert all(
        f["run_id"] == result.run_id and "in/f07.csv: line 2: 'bad' is not a number" in f["error"]
        for f in not_loaded.values()
    )
    assert "20 file(s) seen but not loaded" in daemon.report().description
    assert [daemon.tick() for _ in range(2)] == [[], []]

    time.sleep(CLOCK_MARGIN_SECONDS)  # a replacement comes later than the failure
    drop(root, "f07.csv", "id\n7\n")
    [again] = daemon.tick()
    assert again.tags["etl/new_files"] == "1" and again.run_key != batch.run_key
    assert daemon.run([again])[0].success  # the batch load reads all twenty
    assert daemon.tick() == [] and daemon.not_loaded() == {}


def test_a_partition_run_again_from_the_ui_clears_its_file_and_the_sensor_leaves_it(root, instance, monkeypatch):
    daemon = Daemon(PER_FILE, root, instance)
    drop(root, "orders.csv", "id\n1\n")
    drop(root, "refunds.csv", "id\n2\n")
    monkeypatch.setenv("LANDED_DOWN", "1")  # a bug, fixed later
    failed = daemon.run(daemon.tick())
    assert daemon.tick() == [] and sorted(daemon.not_loaded()) == ["in/orders.csv", "in/refunds.csv"]
    monkeypatch.delenv("LANDED_DOWN")
    time.sleep(CLOCK_MARGIN_SECONDS)

    # Materialized by hand (no sensor tags), and re-executed with the failed run's tags, as the UI does.
    assert daemon.job.execute_in_process(instance=instance, partition_key="in/orders.csv").success
    refunds = next(r for r in failed if r.dagster_run.tags["etl/file"] == "in/refunds.csv")
    assert daemon.job.execute_in_process(
        instance=instance, partition_key="in/refunds.csv", tags=refunds.dagster_run.tags
    ).success
    assert daemon.tick() == [] and daemon.not_loaded() == {}
    assert [daemon.tick() for _ in range(2)] == [[], []]


def test_a_lost_cursor_keeps_what_did_not_load_listed_and_runs_nothing_twice(root, instance):
    daemon = Daemon(PER_FILE, root, instance)
    drop(root, "bad.csv", "id\nbad\n")
    drop(root, "slow.csv", "id\n1\n")
    drop(root, "never.csv", "id\n2\n")
    requests = {r.partition_key: r for r in daemon.tick()}
    assert not daemon.run([requests["in/bad.csv"]])[0].success
    # slow.csv's run is still going when the cursor is lost; never.csv's was never launched.
    slow = requests["in/slow.csv"]
    running = instance.add_run(
        DagsterRun(
            job_name="landed_job",
            run_id=make_new_run_id(),
            status=DagsterRunStatus.STARTED,
            tags={**slow.tags, RUN_KEY_TAG: slow.run_key, SENSOR_NAME_TAG: daemon.sensor.name},
        )
    )
    daemon.cursor = None
    [never] = daemon.tick()  # the same run key as before, so Dagster would launch it once
    assert never.run_key == requests["in/never.csv"].run_key
    assert sorted(daemon.not_loaded()) == ["in/bad.csv"]
    instance.report_run_failed(running, "the worker was lost")
    assert daemon.tick() == [] and sorted(daemon.not_loaded()) == ["in/bad.csv", "in/slow.csv"]
    assert [daemon.tick() for _ in range(2)] == [[], []]

    drop(root, "bad.csv", "id\n3\n")
    [fixed] = daemon.tick()
    assert fixed.partition_key == "in/bad.csv" and daemon.run([fixed])[0].success
    assert daemon.tick() == [] and sorted(daemon.not_loaded()) == ["in/slow.csv"]


def test_executing_the_check_by_hand_restates_the_sensors_latest_finding(root, instance):
    daemon = Daemon(PER_FILE, root, instance)
    check_job = DEFS.resolve_job_def("landed_check")

    def executed() -> dg.AssetCheckEvaluation:
        result = check_job.execute_in_process(instance=instance)
        [evaluation] = [
            e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        return evaluation

    assert executed().passed  # nothing reported yet
    drop(root, "orders.csv", "id\nbad\n")
    daemon.run(daemon.tick())
    daemon.tick()
    by_hand = executed()
    assert not by_hand.passed and by_hand.severity == dg.AssetCheckSeverity.WARN
    assert [f["file"] for f in by_hand.metadata["files"].value] == ["in/orders.csv"]
    assert daemon.not_loaded().keys() == {"in/orders.csv"}  # the sensor's own report is still the latest read
