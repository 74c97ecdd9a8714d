"""Generated histories of a watched folder: files dropped, replaced, dropped again, copied and
removed; runs that load, fail on a bad file or on a fault; cursors lost; retries asked for.

The oracle is a model of what the runs loaded, kept by the test from the files' bytes
(SHA-256 computed here) and what each run read, without the sensor's ledger: once every run
has ended, each file in the folder is loaded or listed by files_not_loaded (per file, exactly
the files not loaded are listed), and no bytes are launched again unless the last run asked
for them failed. A run reads the bytes it was asked for (the sensor's premise: what a load
reads when a file changes under a queued run is the load's business) and, one run per batch,
every other file in the folder too.
"""

import hashlib
import itertools
import os
import time
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
from dagster._core.utils import make_new_run_id
from hypothesis import example, given, settings
from hypothesis import strategies as st

from etl_platform.automation.file_retries import request_retry, source_files_key
from etl_platform.automation.ledger import content_digest
from etl_platform.automation.listing import LocalListing
from etl_platform.automation.not_loaded import latest_report
from etl_platform.automation.sensors import FileWatch, file_sensor
from etl_platform.connectors.landing import LocalFolder
from etl_platform_tests.automation.test_file_sensor import Ticker
from etl_platform_tests.conftest import examples

NAMES = ["a.csv", "b.csv", "c.csv", "d.csv"]
BODIES = ["1", "2", "3", "bad"]  # a run reading "bad" fails
OPS = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(NAMES), st.sampled_from(BODIES)),
    st.tuples(st.just("redrop"), st.sampled_from(NAMES)),
    st.tuples(st.just("copy"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("remove"), st.sampled_from(NAMES)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("tick")),
    st.tuples(st.just("finish"), st.booleans()),  # True: a fault fails every run ending now
    st.tuples(st.just("lose_cursor")),
    st.tuples(st.just("retry"), st.none() | st.sampled_from(NAMES)),
)


_HISTORIES = itertools.count()
_INSTANCE: list[dg.DagsterInstance] = []


def shared_instance() -> dg.DagsterInstance:
    """One in-memory instance for all examples (creating one takes seconds)."""
    if not _INSTANCE:
        _INSTANCE.append(dg.DagsterInstance.ephemeral())
    return _INSTANCE[0]


def content_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class World:
    """A folder, the sensor ticked on it, and a daemon that launches each run key once."""

    def __init__(self, root: Path, per_file: bool, instance: dg.DagsterInstance):
        self.root, self.per_file, self.instance = root, per_file, instance
        # Its own pipeline name: the instance is shared by the examples, and runs, requests and
        # reports are told apart by sensor, job and asset.
        self.pipeline = f"history{next(_HISTORIES)}"
        watch = FileWatch(
            pipeline=self.pipeline,
            pattern="in/*.csv",
            job_name=f"{self.pipeline}_job",
            settle_seconds=0,
            partitions_def_name=f"{self.pipeline}_files" if per_file else None,
            source_key=source_files_key(self.pipeline),
            table_key=dg.AssetKey([self.pipeline, "table"]),
        )
        self.check_key = watch.check_key
        self.ticker = Ticker(file_sensor(watch, lambda context: LocalListing(LocalFolder(root))), instance)
        self.used_keys: set[str] = set()
        self.running: list[tuple[DagsterRun, dg.RunRequest]] = []
        self.loaded: set[str] = set()  # contents some run read and loaded
        self.last_ask_failed: dict[str, bool] = {}  # content -> did the latest run asked for it fail
        self.bodies: dict[str, bytes] = {}  # content -> bytes, of everything ever written
        self.mtime = time.time() - 100

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((self.root / "in").glob("*.csv"))}

    def write(self, name: str, body: bytes) -> None:
        path = self.root / "in" / name
        path.write_bytes(body)
        self.bodies[content_of(body)] = body
        self.mtime += 1  # every write is a new version, in the past (settled at once)
        os.utime(path, (self.mtime, self.mtime))

    def tick(self) -> None:
        requests = self.ticker.tick()
        for event in self.ticker.result.asset_events or []:
            self.instance.report_runless_asset_event(event)
        for request in requests:
            if request.run_key in self.used_keys:
                continue  # Dagster launches a run key once per sensor
            self.used_keys.add(request.run_key)
            for content in self.asked_for(request):
                assert self.last_ask_failed.get(content, True), (
                    f"{request.run_key}: bytes launched again although their run loaded them"
                )
            tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: self.ticker.sensor.name}
            run = self.instance.add_run(
                DagsterRun(
                    job_name=self.ticker.sensor.job_name,
                    run_id=make_new_run_id(),
                    tags=tags,
                    status=DagsterRunStatus.STARTED,
                )
            )
            self.running.append((run, request))

    def asked_for(self, request: dg.RunRequest) -> list[str]:
        """The contents a request asks for: a per-file run's file, a batch's files (from their digests)."""
        if self.per_file:
            return [request.tags["etl/file_content"]]
        by_digest = {content_digest(content).hex(): content for content in self.bodies}
        return [by_digest[token.split(":")[0]] for token in request.tags["etl/content_digests"].split(",")]

    def finish(self, fault: bool) -> None:
        """Every run ends now: it reads the bytes asked for and, a batch, every file in the folder."""
        for run, request in self.running:
            asked = self.asked_for(request)
            read = set(asked) | ({content_of(body) for body in self.files().values()} if not self.per_file else set())
            ok = not fault and not any(b"bad" in self.bodies[content] for content in read)
            for content in asked:
                self.last_ask_failed[content] = not ok
            if ok:
                self.loaded |= read
            if ok:
                success = DagsterEvent(
                    event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name, message="loaded"
                )
                self.instance.report_dagster_event(success, run_id=run.run_id)
            else:
                self.instance.report_run_failed(run, "a bad row" if not fault else "the server went away")
        self.running = []

    def settle(self) -> None:
        for _ in range(5):
            self.tick()
            if not self.running:
                self.tick()  # the last look, after the runs it followed
                return
            self.finish(fault=False)
        raise AssertionError("the sensor kept asking for runs in a quiet folder")

    def check_every_file_is_loaded_or_listed(self) -> set[str]:
        files = self.files()
        not_loaded = {name for name, body in files.items() if content_of(body) not in self.loaded}
        listed = self.listed()
        assert listed <= files.keys(), "a file listed as not loaded is not in the folder"
        assert not_loaded <= listed, f"not loaded and not listed: {sorted(not_loaded - listed)}"
        if self.per_file:
            assert listed == not_loaded, f"listed although loaded: {sorted(listed - not_loaded)}"
        return not_loaded

    def listed(self) -> set[str]:
        report = latest_report(self.instance, self.check_key)
        return {f["file"].removeprefix("in/") for f in report.metadata["files"].value} if report else set()


def play(root: Path, per_file: bool, ops: list[tuple]) -> None:
    world = World(root, per_file, shared_instance())
    pipeline = world.pipeline
    for op, *args in ops:
        if op == "drop":
            world.write(args[0], f"id\n{args[1]}\n".encode())
        elif op == "redrop" and args[0] in world.files():
            world.write(args[0], world.files()[args[0]])
        elif op == "copy" and args[0] in world.files():
            world.write(args[1], world.files()[args[0]])
        elif op == "remove":
            (root / "in" / args[0]).unlink(missing_ok=True)
        elif op == "tick":
            world.tick()
        elif op == "finish":
            world.finish(fault=args[0])
        elif op == "lose_cursor":
            world.ticker.cursor = None
        elif op == "retry":
            request_retry(world.instance, pipeline, None if args[0] is None else [f"in/{args[0]}"])
    # Quiet at last: every run ends without faults, and the sensor looks until it asks for nothing.
    world.settle()
    world.check_every_file_is_loaded_or_listed()
    # A retry of everything not loaded, in a world without faults: only bad bytes stay unloaded.
    request_retry(world.instance, pipeline, None)
    world.settle()
    not_loaded = world.check_every_file_is_loaded_or_listed()
    bad = {name for name, body in world.files().items() if b"bad" in body}
    assert not_loaded <= bad if world.per_file else (not not_loaded or bad), f"still not loaded: {sorted(not_loaded)}"


@settings(max_examples=examples(60))
@given(ops=st.lists(OPS, min_size=4, max_size=16), per_file=st.booleans())
@example(ops=[("drop", "a.csv", "1"), ("tick",), ("finish", True)], per_file=True)  # the server was down
@example(
    ops=[("drop", "a.csv", "1"), ("drop", "b.csv", "bad"), ("tick",), ("finish", False), ("copy", "a.csv", "c.csv")],
    per_file=False,
)
def test_every_file_is_loaded_or_listed_and_no_bytes_run_twice_unless_their_run_failed(tmp_path_factory, ops, per_file):
    root = tmp_path_factory.mktemp("folder")
    (root / "in").mkdir()
    play(root, per_file, ops)
