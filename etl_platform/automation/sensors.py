"""File sensors: a pipeline runs when new or changed files appear in its folder or S3 prefix.

One tick lists the folder, compares the listing with the ledger (see ``ledger.py``) and
takes up at most ``max_files_per_tick`` settled files within a time budget; the rest wait
for the next tick, so a burst of thousands of files never times a tick out.

A file has settled once it has not changed for ``settle_seconds``: its modification time
says so at the first look when it is old enough. A file changed more recently is looked at
again within the same tick when it would settle inside the tick's budget (otherwise on the
next tick), so a dropped file runs within one sensor interval, and a file still being
written (a new size or modification time at every look) keeps waiting.

A pipeline partitioned per file gets one run per file (its partition is added in the same
tick); any other pipeline gets one run per tick covering the files taken up. Run keys come
from the files' contents, never from the tick, so Dagster launches a file's run once even
when the cursor is lost and the ledger starts over.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from etl_platform.automation.ledger import Ledger, content_digest, digest, identity
from etl_platform.automation.listing import FileListing, ListedFile, unsafe_name
from etl_platform.secrets import scrub

TICK_BUDGET_SECONDS = 20.0  # well inside Dagster's 60 s limit for one sensor evaluation
TAG_FILE = "etl/file"
TAG_CONTENT = "etl/content_digest"
TAG_CONTENTS = "etl/content_digests"
TAG_FILE_COUNT = "etl/new_files"


@dataclass(frozen=True)
class FileWatch:
    """What one pipeline's file sensor watches and how it asks for runs."""

    pipeline: str
    pattern: str  # the source's glob, relative to the base folder
    job_name: str
    partitions_def_name: str | None = None  # per-file dynamic partitions, or None for one run per tick
    settle_seconds: int = 10
    max_files: int = 500
    budget_seconds: float = TICK_BUDGET_SECONDS

    @property
    def sensor_name(self) -> str:
        return f"{self.pipeline}_file_sensor"


@dataclass
class Tick:
    """What one look at the folder found."""

    ready: list[tuple[ListedFile, str]] = field(default_factory=list)  # (file, content id) to run
    duplicates: list[ListedFile] = field(default_factory=list)  # bytes already run under another name
    waiting: int = 0  # new or still changing: looked at again next tick
    deferred: int = 0  # settled, left for the next tick by the per-tick limits
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    listed: int = 0
    settles_at: float | None = None  # when the first waiting file settles if it stays as it is

    def followed_by(self, later: "Tick") -> "Tick":
        """This look and a later one in the same tick, as one: files taken up add up,
        what is still waiting is what the later look found."""
        return Tick(
            ready=self.ready + later.ready,
            duplicates=self.duplicates + later.duplicates,
            waiting=later.waiting,
            deferred=later.deferred,
            skipped=self.skipped + later.skipped,
            listed=later.listed,
            settles_at=later.settles_at,
        )


def take_up(
    ledger: Ledger,
    listed: list[ListedFile],
    watch: FileWatch,
    content_id: Callable[[ListedFile], str],
    now: float,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> Tick:
    """Compare a listing with the ledger, update the ledger, and say which files to run."""
    tick = Tick(listed=len(listed))
    current = {identity(f.name, f.size, f.version): f for f in listed}
    # Files that disappeared or changed drop out: the ledger stays the size of the folder.
    ledger.taken &= current.keys()
    ledger.pending = {d: t for d, t in ledger.pending.items() if d in current}
    for ident, file in current.items():
        if ident in ledger.taken:
            continue
        # Unchanged since it was first seen with this name, size and version, and (where the
        # store says) since it was last modified: a modification time in the future counts
        # from the first look instead.
        first_seen = ledger.pending.setdefault(ident, int(now))
        quiet_since = min(first_seen, file.modified) if file.modified is not None else first_seen
        if now - quiet_since < watch.settle_seconds:
            tick.waiting += 1
            settles = quiet_since + watch.settle_seconds
            tick.settles_at = settles if tick.settles_at is None else min(tick.settles_at, settles)
            continue
        if len(tick.ready) >= watch.max_files or clock() >= deadline:
            tick.deferred += 1
            continue
        if why := unsafe_name(file.name):
            tick.skipped.append((file.name, why))
            ledger.pending.pop(ident, None)
            ledger.taken.add(ident)  # reported once, not on every tick
            continue
        try:
            content = content_id(file)
        except FileNotFoundError:
            ledger.pending.pop(ident, None)  # removed since the listing
            continue
        ledger.pending.pop(ident, None)
        ledger.taken.add(ident)
        fingerprint = content_digest(content)
        if fingerprint in ledger.contents:
            tick.duplicates.append(file)
            continue
        ledger.remember_content(fingerprint)
        tick.ready.append((file, content))
    return tick


def requests_for(watch: FileWatch, ready: list[tuple[ListedFile, str]]) -> tuple[list[dg.RunRequest], list]:
    """Run requests (and dynamic partitions to add) for the files taken up in one tick."""
    if not ready:
        return [], []
    if watch.partitions_def_name:
        runs = [
            dg.RunRequest(
                run_key=f"file:{content_digest(content).hex()}",
                partition_key=file.name,
                tags={TAG_FILE: file.name, TAG_CONTENT: content_digest(content).hex(), "etl/file_content": content},
            )
            for file, content in ready
        ]
        added = dg.AddDynamicPartitionsRequest(
            partitions_def_name=watch.partitions_def_name, partition_keys=[file.name for file, _ in ready]
        )
        return runs, [added]
    digests = sorted(content_digest(content).hex() for _, content in ready)
    names = [file.name for file, _ in ready]
    run = dg.RunRequest(
        run_key=f"files:{digest(*digests).hex()}",
        tags={TAG_FILE_COUNT: str(len(ready)), TAG_FILE: names[0] + (f" (+{len(names) - 1} more)" if len(names) > 1 else ""),
              TAG_CONTENTS: ",".join(digests)},
    )
    return [run], []


def recall_contents(instance: dg.DagsterInstance, sensor_name: str, ledger: Ledger) -> int:
    """Refill a lost ledger's contents from the runs this sensor already asked for; returns how many."""
    from dagster._core.storage.tags import SENSOR_NAME_TAG

    recalled = 0
    for run in instance.get_runs(filters=dg.RunsFilter(tags={SENSOR_NAME_TAG: sensor_name})):
        for hexed in filter(None, [run.tags.get(TAG_CONTENT), *run.tags.get(TAG_CONTENTS, "").split(",")]):
            ledger.remember_content(bytes.fromhex(hexed))
            recalled += 1
    return recalled


def file_sensor(
    watch: FileWatch,
    listing_for: Callable[[dg.SensorEvaluationContext], FileListing],
    *,
    job=None,  # the job to run (a job definition or an asset job); default: watch.job_name
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    required_resource_keys: set[str] | None = None,
) -> dg.SensorDefinition:
    """The sensor ``<pipeline>_file_sensor``; ``listing_for`` gives the folder to watch at tick time."""

    @dg.sensor(
        name=watch.sensor_name,
        job=job,
        job_name=None if job is not None else watch.job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys=required_resource_keys,
        description=f"Runs {watch.pipeline} when new or changed files matching '{watch.pattern}' appear, "
        f"once they have not changed for {watch.settle_seconds} s; at most {watch.max_files} files a tick.",
    )
    def watch_files(context: dg.SensorEvaluationContext, **_resources) -> dg.SensorResult:
        # (Dagster also passes required resources as keyword arguments when a sensor is called directly.)
        started = time.monotonic()
        deadline = started + watch.budget_seconds
        ledger = Ledger.from_cursor(context.cursor)
        instance = _instance_of(context)
        if ledger.rebuilt and instance is not None:
            recalled = recall_contents(instance, watch.sensor_name, ledger)
            context.log.info(f"no cursor: started a new ledger, {recalled} content fingerprint(s) recalled from earlier runs")
        listing = listing_for(context)

        def look() -> Tick:
            try:
                listed = listing.list(watch.pattern)
            except Exception as err:  # the folder's own error (S3 access denied, ...), credentials masked
                raise dg.Failure(scrub(f"listing '{watch.pattern}' in {listing.location} failed: {err}")) from None
            return take_up(ledger, listed, watch, listing.content_id, now=time.time(), deadline=deadline)

        tick = look()
        # Files about to settle are looked at again in this tick rather than one interval later,
        # as long as a quarter of the budget is left for taking them up after the wait.
        while tick.settles_at is not None and (
            (wait := tick.settles_at - time.time()) <= deadline - time.monotonic() - watch.budget_seconds / 4
        ):
            time.sleep(max(wait, 0) + 0.05)
            tick = tick.followed_by(look())
        runs, partitions = requests_for(watch, tick.ready)
        for name, why in tick.skipped:
            context.log.warning(f"{listing.location}: skipped {name!r}: {why}")
        if tick.duplicates:
            shown = ", ".join(f.name for f in tick.duplicates[:10])
            context.log.info(f"{len(tick.duplicates)} file(s) hold bytes already run under another name, not run again: {shown}")
        summary = (
            f"{tick.listed} file(s) listed in {listing.location}: {len(tick.ready)} taken up, "
            f"{tick.waiting} settling, {tick.deferred} left for the next tick, {len(tick.duplicates)} duplicate(s); "
            f"{time.monotonic() - started:.2f} s"
        )
        context.log.info(summary)
        cursor = ledger.to_cursor()
        if not runs:
            return dg.SensorResult(skip_reason=summary, cursor=cursor)
        return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=partitions, cursor=cursor)

    return watch_files


def _instance_of(context: dg.SensorEvaluationContext) -> dg.DagsterInstance | None:
    try:
        return context.instance
    except dg.DagsterInvariantViolationError:  # a context built in a test without an instance
        return None
