"""File sensors driven tick by tick through their cursor, on a real folder and a real S3 server."""

import hashlib
import itertools
import os
import statistics
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
from dagster._core.utils import make_new_run_id

from etl_platform.automation.ledger import Ledger
from etl_platform.automation.listing import ListedFile, LocalListing
from etl_platform.automation.pipeline import listing_of
from etl_platform.automation.sensors import TICK_BUDGET_SECONDS, FileWatch, file_sensor, take_up
from etl_platform.connectors.connections import as_resource, resource_key
from etl_platform.connectors.landing import LocalFolder
from etl_platform.connectors.registry import build
from etl_platform_tests.s3_server import S3Bucket

FILES = dg.DynamicPartitionsDefinition(name="drops_files")


@dg.asset(partitions_def=FILES)
def drops(context: dg.AssetExecutionContext) -> None:
    context.log.info(f"loading {context.partition_key}")


@dg.asset
def drops_batch() -> None:
    pass


PER_FILE_JOB = dg.define_asset_job("drops_job", selection=[drops])
BATCH_JOB = dg.define_asset_job("drops_batch_job", selection=[drops_batch])


def sensor_for(
    root: Path, *, per_file: bool = True, settle: int = 0, max_files: int = 500, budget: float = TICK_BUDGET_SECONDS
) -> dg.SensorDefinition:
    watch = FileWatch(
        pipeline="drops" if per_file else "drops_batch",
        pattern="in/*.csv",
        job_name="drops_job" if per_file else "drops_batch_job",
        partitions_def_name="drops_files" if per_file else None,
        settle_seconds=settle,
        max_files=max_files,
        budget_seconds=budget,
    )
    return file_sensor(
        watch, lambda context: LocalListing(LocalFolder(root)), job=PER_FILE_JOB if per_file else BATCH_JOB
    )


class Ticker:
    """Evaluates a sensor the way the daemon does: cursor from the last tick, same instance."""

    def __init__(self, sensor: dg.SensorDefinition, instance: dg.DagsterInstance, **context):
        self.sensor, self.instance, self.context = sensor, instance, context
        self.cursor: str | None = None
        self.seconds: list[float] = []

    def tick(self) -> list[dg.RunRequest]:
        started = time.perf_counter()
        result = self.sensor(dg.build_sensor_context(cursor=self.cursor, instance=self.instance, **self.context))
        self.seconds.append(time.perf_counter() - started)
        self.cursor = result.cursor
        self.result = result
        return list(result.run_requests or [])

    def launch(self, requests: list[dg.RunRequest]) -> None:
        """Record runs as the daemon would launch them, with their run keys and tags."""
        for request in requests:
            tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: self.sensor.name}
            self.instance.add_run(
                DagsterRun(
                    job_name=self.sensor.job_name, run_id=make_new_run_id(), tags=tags, status=DagsterRunStatus.SUCCESS
                )
            )


def drop(root: Path, name: str, body: str, mtime: float | None = None) -> Path:
    path = root / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    return tmp_path


def test_bursts_with_equal_and_older_times_each_run_once_as_their_own_partition(root, instance):
    ticker = Ticker(sensor_for(root, settle=10), instance)
    same_time = time.time() - 3600
    for i in range(5):
        drop(root, f"day-{i}.csv", f"id\n{i}\n", mtime=same_time)
    runs = ticker.tick()  # unchanged for an hour: settled at the first look
    assert sorted(r.partition_key for r in runs) == [f"in/day-{i}.csv" for i in range(5)]
    assert len({r.run_key for r in runs}) == 5
    [added] = ticker.result.dynamic_partitions_requests
    assert added.partitions_def_name == "drops_files" and sorted(added.partition_keys) == sorted(
        r.partition_key for r in runs
    )
    assert ticker.tick() == []

    # A second burst whose files carry older (and equal) timestamps than the first: a
    # timestamp watermark would skip them; the ledger does not.
    for i in range(3):
        drop(root, f"late-{i}.csv", f"id\nlate {i}\n", mtime=same_time - 86_400)
    assert sorted(r.partition_key for r in ticker.tick()) == ["in/late-0.csv", "in/late-1.csv", "in/late-2.csv"]
    assert ticker.tick() == []


def test_a_file_still_being_written_waits_until_it_stops_changing(root, instance):
    path = root / "in" / "big.csv"
    path.write_text("id\n")
    writing, stop = threading.Event(), threading.Event()

    def writer() -> None:  # a slow export: a line every 0.1 s until told to stop
        with path.open("a") as handle:
            for i in itertools.count():
                handle.write(f"{i}\n")
                handle.flush()
                writing.set()
                if stop.wait(0.1):
                    return

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        writing.wait(5)
        # Each look inside the tick sees a new size, so the file never settles while written.
        ticker = Ticker(sensor_for(root, settle=2, budget=4), instance)
        assert ticker.tick() == [] and ticker.tick() == []
    finally:
        stop.set()
        thread.join()
    # Done writing: the next tick looks again once the file has been still for 2 s and takes it
    # up, whole, without waiting for another tick.
    [run] = ticker.tick()
    assert run.partition_key == "in/big.csv"
    assert run.tags["etl/file_content"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()

    slow = Ticker(sensor_for(root, settle=3600), instance)
    drop(root, "fresh.csv", "id\n9\n")
    assert [slow.tick() for _ in range(3)] == [[], [], []]  # not settled for an hour yet


def test_a_file_dropped_just_before_a_look_runs_from_that_look(root, instance):
    """The look waits the rest of the settle time rather than leaving the file to the next
    interval, so a dropped file runs within one sensor interval."""
    ticker = Ticker(sensor_for(root, settle=2), instance)
    drop(root, "now.csv", "id\n1\n")
    [run] = ticker.tick()
    assert run.partition_key == "in/now.csv"


def test_settling_counts_from_the_modification_time_or_from_the_first_look_when_that_is_in_the_future():
    watch = FileWatch(pipeline="p", pattern="*.csv", job_name="p_job", settle_seconds=10)
    ledger, now = Ledger(), 1_000_000.0
    ids = lambda file: f"id:{file.name}:{file.size}"  # noqa: E731
    files = [
        ListedFile("old.csv", 5, "v1", modified=now - 60),  # still for a minute: settled
        ListedFile("new.csv", 5, "v1", modified=now - 3),  # changed 3 s ago: settles at now + 7
        ListedFile("skewed.csv", 5, "v1", modified=now + 3600),  # a clock ahead: counts from this look
        ListedFile("unknown.csv", 5, "v1"),  # no modification time: counts from this look
    ]
    tick = take_up(ledger, files, watch, ids, now=now, deadline=float("inf"))
    assert [r.file.name for r in tick.ready] == ["old.csv"] and tick.waiting == 3 and tick.settles_at == now + 7
    tick = take_up(ledger, files, watch, ids, now=now + 7, deadline=float("inf"))
    assert [r.file.name for r in tick.ready] == ["new.csv"] and tick.settles_at == now + 10
    grown = [ListedFile("skewed.csv", 6, "v2", modified=now + 3600), files[3]]  # skewed.csv changed again
    tick = take_up(ledger, grown, watch, ids, now=now + 10, deadline=float("inf"))
    assert [r.file.name for r in tick.ready] == ["unknown.csv"] and tick.settles_at == now + 20


def test_the_same_bytes_under_a_new_name_do_not_run_again_but_changed_bytes_do(root, instance):
    ticker = Ticker(sensor_for(root), instance)
    original = drop(root, "orders.csv", "id\n1\n2\n")
    [first] = ticker.tick()
    original.rename(root / "in" / "orders-renamed.csv")
    drop(root, "orders-copy.csv", "id\n1\n2\n")
    assert ticker.tick() == [] and ticker.tick() == []
    drop(root, "orders.csv", "id\n1\n2\n3\n")  # same name, new content
    [again] = ticker.tick()
    assert again.partition_key == "in/orders.csv" and again.run_key != first.run_key


def test_a_lost_cursor_requests_no_file_twice(root, instance):
    ticker = Ticker(sensor_for(root), instance)
    for i in range(4):
        drop(root, f"f{i}.csv", f"id\n{i}\n")
    first = ticker.tick()
    assert len(first) == 4
    ticker.launch(first)
    keys = {r.run_key for r in first}

    # The same folder seen by a fresh ledger and no runs yet: the same run keys, which
    # Dagster launches once per sensor.
    fresh = Ticker(sensor_for(root), dg.DagsterInstance.ephemeral())
    assert {r.run_key for r in fresh.tick()} == keys

    # The cursor is lost on the real instance: the ledger is rebuilt from the runs already
    # asked for, and nothing is requested again; a file new since then still is.
    ticker.cursor = None
    drop(root, "f9.csv", "id\n9\n")
    [new] = ticker.tick()
    assert new.partition_key == "in/f9.csv" and new.run_key not in keys


def test_without_per_file_partitions_one_run_covers_the_new_files(root, instance):
    ticker = Ticker(sensor_for(root, per_file=False), instance)
    for i in range(3):
        drop(root, f"b{i}.csv", f"id\n{i}\n")
    [run] = ticker.tick()
    assert run.partition_key is None and run.run_key.startswith("files:")
    assert run.tags["etl/new_files"] == "3" and not ticker.result.dynamic_partitions_requests
    ticker.launch([run])
    ticker.cursor = None  # lost: recalled from the run's tags, nothing runs again
    assert ticker.tick() == [] and ticker.tick() == []


def test_files_outside_the_folder_or_with_unusable_names_are_never_requested(root, instance, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.csv").write_text("id\n1\n")
    (root / "in" / "link.csv").symlink_to(outside / "secret.csv")
    drop(root, "a...b.csv", "id\n2\n")
    drop(root, "ok.csv", "id\n3\n")
    ticker = Ticker(sensor_for(root), instance)
    assert [r.partition_key for r in ticker.tick()] == ["in/ok.csv"]


def test_ten_thousand_files_at_once_over_bounded_ticks(root, instance):
    count, per_tick = 10_000, 1_000
    for i in range(count):
        (root / "in" / f"burst-{i:05d}.csv").write_text(f"id\n{i}\n")
    ticker = Ticker(sensor_for(root, max_files=per_tick), instance)
    requested: list[dg.RunRequest] = []
    while True:
        runs = ticker.tick()
        assert len(runs) <= per_tick
        requested += runs
        if not runs and len(ticker.seconds) > 1:
            break
        assert len(ticker.seconds) < 20, "the burst should be done in about count / per_tick ticks"
    keys = [r.run_key for r in requested]
    names = [r.partition_key for r in requested]
    assert len(keys) == len(set(keys)) == count  # 0 duplicated
    assert set(names) == {f"in/burst-{i:05d}.csv" for i in range(count)}  # 0 missed
    # No run was launched here, so the ledger still waits for all 10,000; once they end it keeps
    # only the folder's files.
    ledger = Ledger.from_cursor(ticker.cursor)
    assert sum(1 for _ in ledger.in_flight()) == count
    waiting_kb = len(ticker.cursor) / 1024
    ledger.flights = []
    cursor_kb = len(ledger.to_cursor()) / 1024
    print(
        f"\n10,000-file burst: {len(ticker.seconds)} ticks, tick seconds max {max(ticker.seconds):.2f} "
        f"median {statistics.median(ticker.seconds):.2f}, cursor {cursor_kb:.0f} KB ({waiting_kb:.0f} KB while the "
        "runs wait)"
    )
    assert max(ticker.seconds) < 15
    assert cursor_kb < 300
    assert (waiting_kb - cursor_kb) * 1024 / count < 24  # 17 bytes a file, base64-encoded


def test_an_s3_prefix_with_more_than_a_thousand_keys(s3_bucket: S3Bucket, instance):  # noqa: F811
    count = 1_205  # more than one page of ListObjectsV2
    s3_bucket.put_many(
        {f"drops/in/obj-{i:04d}.csv": f"id\n{i}\n" for i in range(count)} | {"drops/in/": "", "elsewhere/x.csv": "no"}
    )
    connector = build("lake", "s3", s3_bucket.options(prefix="drops"))
    watch = FileWatch(
        pipeline="drops",
        pattern="in/*.csv",
        job_name="drops_job",
        partitions_def_name="drops_files",
        settle_seconds=0,
        max_files=2_000,
    )
    sensor = file_sensor(watch, listing_of("lake"), job=PER_FILE_JOB, required_resource_keys={resource_key("lake")})
    ticker = Ticker(sensor, instance, resources={resource_key("lake"): as_resource(connector)})
    runs = ticker.tick()
    assert len(runs) == len({r.run_key for r in runs}) == count
    assert {r.partition_key for r in runs} == {f"in/obj-{i:04d}.csv" for i in range(count)}
    assert runs[0].tags["etl/file_content"].startswith("etag:")
    s3_bucket.put("drops/in/obj-0000-copy.csv", "id\n0\n")  # same bytes, same ETag: not run again
    s3_bucket.put("drops/in/new.csv", "id\nnew\n")
    assert [r.partition_key for r in ticker.tick()] == ["in/new.csv"]


def test_the_demo_customers_pipeline_runs_when_a_new_export_lands(demo_landing, instance):
    from etl_platform_tests.conftest import load_definitions

    sensor = load_definitions().get_sensor_def("shop_customers_file_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds == 30
    ticker = Ticker(sensor, instance)
    export = demo_landing / "shop" / "customers.parquet"
    an_hour_ago = time.time() - 3600
    os.utime(export, (an_hour_ago, an_hour_ago))  # last night's export, already there
    [run] = ticker.tick()
    assert run.job_name in (None, "shop_customers_job") and sensor.job_name == "shop_customers_job"
    assert run.tags["etl/new_files"] == "1" and run.tags["etl/file"] == "shop/customers.parquet"
    assert ticker.tick() == []

    # Tonight's export replaces it: the first look after the drop waits out the 10 s settle
    # time and asks for the run, rather than leaving it to the look an interval later.
    export.write_bytes(export.read_bytes() + b"\0")
    assert len(ticker.tick()) == 1


def test_per_file_requests_resolve_against_the_jobs_dynamic_partitions_as_in_the_daemon(root, instance):
    """The daemon's own resolution: each partition key must exist once this tick's additions apply."""
    sensor = sensor_for(root)
    defs = dg.Definitions(assets=[drops], jobs=[PER_FILE_JOB], sensors=[sensor])
    for i in range(3):
        drop(root, f"r{i}.csv", f"id\n{i}\n")
    context = dg.build_sensor_context(instance=instance, definitions=defs, instance_ref=instance.get_ref())
    data = sensor.evaluate_tick(context)
    assert [r.partition_key for r in data.run_requests] == ["in/r0.csv", "in/r1.csv", "in/r2.csv"]
    assert all(r.has_resolved_partition() and r.tags["dagster/partition"] == r.partition_key for r in data.run_requests)
