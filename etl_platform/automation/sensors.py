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

The sensor follows the runs it asked for (``outcomes.py``). Bytes whose run failed for good
run again, under a new run key (their attempt number), when they are dropped again (a new
modification time or a new name; new bytes are a new file anyway) or when a retry is asked
for (``file_retries.py``); otherwise they are not asked for again. Until then the check
``files_not_loaded`` (``not_loaded.py``) lists them.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from etl_platform.automation import not_loaded, outcomes
from etl_platform.automation.file_retries import RetryAsk, describe, read_requests
from etl_platform.automation.ledger import (
    TAG_CONTENT,
    TAG_CONTENTS,
    TAG_FILE,
    TAG_FILE_COUNT,
    Flight,
    Ledger,
    Member,
    batch_token,
    content_digest,
    digest,
    file_run_key,
    identity,
)
from etl_platform.automation.listing import FileListing, ListedFile, unsafe_name
from etl_platform.secrets.references import scrub

TICK_BUDGET_SECONDS = 20.0  # well inside Dagster's 60 s limit for one sensor evaluation


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
    source_key: dg.AssetKey | None = None  # the source files' asset: retry requests and files_not_loaded; None: neither
    table_key: dg.AssetKey | None = None  # the table the job loads (a run of only its downstream models loads no file)

    @property
    def sensor_name(self) -> str:
        return f"{self.pipeline}_file_sensor"

    @property
    def check_key(self) -> dg.AssetCheckKey | None:
        return None if self.source_key is None else dg.AssetCheckKey(self.source_key, not_loaded.CHECK_NAME)


@dataclass
class Ready:
    """A file to run: its bytes' content id, how many runs of those bytes failed before, and the
    other listed files holding the same bytes (they load with it)."""

    file: ListedFile
    content: str
    attempt: int = 0
    riders: list[bytes] = field(default_factory=list)

    @property
    def fingerprint(self) -> bytes:
        return content_digest(self.content)


@dataclass
class Tick:
    """What one look at the folder found."""

    ready: list[Ready] = field(default_factory=list)  # files to run
    duplicates: list[ListedFile] = field(default_factory=list)  # bytes already run under another name
    waiting: int = 0  # new or still changing: looked at again next tick
    deferred: int = 0  # settled, left for the next tick by the per-tick limits
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    listed: int = 0
    settles_at: float | None = None  # when the first waiting file settles if it stays as it is
    retried: list[str] = field(default_factory=list)  # names of files run again after a failure
    not_retried: list[str] = field(default_factory=list)  # names a retry was asked for that are not failures
    names: dict[bytes, str] = field(default_factory=dict)  # identity -> name, of everything listed

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
            retried=self.retried + later.retried,
            not_retried=self.not_retried + later.not_retried,
            names=later.names,
        )


def take_up(
    ledger: Ledger,
    listed: list[ListedFile],
    watch: FileWatch,
    content_id: Callable[[ListedFile], str],
    now: float,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    ask: RetryAsk | None = None,
) -> Tick:
    """Compare a listing with the ledger, update the ledger, and say which files to run."""
    tick = Tick(listed=len(listed))
    current = {identity(f.name, f.size, f.version): f for f in listed}
    tick.names = {ident: f.name for ident, f in current.items()}
    # Files that disappeared or changed drop out: the ledger stays the size of the folder.
    ledger.taken &= current.keys()
    ledger.skipped &= current.keys()
    ledger.pending = {d: t for d, t in ledger.pending.items() if d in current}
    for failure in ledger.failed.values():
        failure.identities &= current.keys()
    this_look: dict[bytes, Ready] = {}  # content -> the file taken up with it in this look
    flying = {member.content: (flight, member) for flight, member in ledger.in_flight()}

    def room() -> bool:
        return len(tick.ready) < watch.max_files and clock() < deadline

    def run(file: ListedFile, content: str, attempt: int, riders: set[bytes]) -> None:
        ready = Ready(file, content, attempt, sorted(riders))
        ledger.remember_content(ready.fingerprint)
        tick.ready.append(ready)
        this_look[ready.fingerprint] = ready
        if attempt:
            tick.retried.append(file.name)

    # Retries asked for: bytes whose run failed, held by a listed file, run again as they are.
    if ask:
        failed_names = {current[i].name for f in ledger.failed.values() for i in f.identities}
        tick.not_retried = sorted(ask.names - failed_names)
        for failure in ledger.failed.values():
            names = {current[i].name for i in failure.identities}
            failure.retry |= bool(names) and (ask.every_file or bool(names & ask.names))
    for fingerprint, failure in list(ledger.failed.items()):
        if not failure.retry:
            continue
        files = sorted((current[i] for i in failure.identities), key=lambda f: f.name)
        if not files:
            failure.retry = False  # no file holds these bytes any more: nothing to run
            continue
        if not room():
            tick.deferred += 1
            continue
        try:
            content = content_id(files[0])
        except FileNotFoundError:
            continue  # removed since the listing
        del ledger.failed[fingerprint]
        riders = failure.identities - {identity(files[0].name, files[0].size, files[0].version)}
        if content_digest(content) == fingerprint:
            run(files[0], content, failure.attempt + 1, riders)
        else:  # rewritten in place with its size and version kept: new bytes, a new file
            run(files[0], content, 0, set())

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
        if not room():
            tick.deferred += 1
            continue
        if why := unsafe_name(file.name):
            tick.skipped.append((file.name, why))
            ledger.pending.pop(ident, None)
            ledger.taken.add(ident)  # reported once, not on every tick
            ledger.skipped.add(ident)
            continue
        try:
            content = content_id(file)
        except FileNotFoundError:
            ledger.pending.pop(ident, None)  # removed since the listing
            continue
        ledger.pending.pop(ident, None)
        ledger.taken.add(ident)
        fingerprint = content_digest(content)
        failure = ledger.failed.get(fingerprint)
        if fingerprint in this_look:  # the same bytes as a file taken up in this look
            this_look[fingerprint].riders.append(ident)
            tick.duplicates.append(file)
        elif failure is not None and failure.recalled and (file.modified is None or file.modified <= failure.failed_at):
            failure.identities.add(ident)  # there when its run failed: the same file, found again after a lost cursor
            tick.duplicates.append(file)
        elif failure is not None:  # bytes whose run failed, dropped again: run them again
            del ledger.failed[fingerprint]
            run(file, content, failure.attempt + 1, failure.identities - {ident})
        elif fingerprint in ledger.contents:
            if fingerprint in flying:  # its run has not ended: if it fails, this file did not load either
                flight, member = flying[fingerprint]
                flight.members.append(Member(fingerprint, ident, member.attempt, member.seen))
            tick.duplicates.append(file)
        else:
            run(file, content, 0, set())
    return tick


def run_key_of_batch(ready: list[Ready]) -> bytes:
    return digest(*sorted(batch_token(r.fingerprint, r.attempt) for r in ready))


def requests_for(watch: FileWatch, ready: list[Ready]) -> tuple[list[dg.RunRequest], list]:
    """Run requests (and dynamic partitions to add) for the files taken up in one tick."""
    if not ready:
        return [], []
    if watch.partitions_def_name:
        runs = [
            dg.RunRequest(
                run_key=file_run_key(r.fingerprint, r.attempt),
                partition_key=r.file.name,
                tags={TAG_FILE: r.file.name, TAG_CONTENT: r.fingerprint.hex(), "etl/file_content": r.content},
            )
            for r in ready
        ]
        added = dg.AddDynamicPartitionsRequest(
            partitions_def_name=watch.partitions_def_name, partition_keys=[r.file.name for r in ready]
        )
        return runs, [added]
    names = [r.file.name for r in ready]
    run = dg.RunRequest(
        run_key=f"files:{run_key_of_batch(ready).hex()}",
        tags={
            TAG_FILE_COUNT: str(len(ready)),
            TAG_FILE: names[0] + (f" (+{len(names) - 1} more)" if len(names) > 1 else ""),
            TAG_CONTENTS: ",".join(sorted(batch_token(r.fingerprint, r.attempt) for r in ready)),
        },
    )
    return [run], []


def flight_for(watch: FileWatch, ready: list[Ready], now: int) -> Flight:
    """What the ledger waits for after asking for the runs of ``requests_for``."""
    members = [
        Member(r.fingerprint, ident, r.attempt)
        for r in ready
        for ident in [identity(r.file.name, r.file.size, r.file.version), *r.riders]
    ]
    return Flight(now, members, None if watch.partitions_def_name else run_key_of_batch(ready))


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
        f"once they have not changed for {watch.settle_seconds} s; at most {watch.max_files} files a tick. "
        "Files whose run failed run again when dropped again or on `etl-platform files retry`.",
    )
    def watch_files(context: dg.SensorEvaluationContext, **_resources) -> dg.SensorResult:
        # (Dagster also passes required resources as keyword arguments when a sensor is called directly.)
        started = time.monotonic()
        deadline = started + watch.budget_seconds
        ledger = Ledger.from_cursor(context.cursor)
        instance = _instance_of(context)
        ask = RetryAsk()
        if instance is not None:
            if ledger.rebuilt:
                recalled = outcomes.recall(instance, watch.sensor_name, ledger, time.time())
                context.log.info(
                    f"no cursor: started a new ledger, {recalled} content fingerprint(s) recalled from earlier runs, "
                    f"{len(ledger.failed)} not loaded, {sum(1 for _ in ledger.in_flight())} still running"
                )
            followed = outcomes.follow_runs(instance, watch.sensor_name, ledger, time.time())
            if followed.failed:
                context.log.warning(f"{followed.failed} file(s) did not load: see the check {not_loaded.CHECK_NAME}")
            if watch.source_key is not None:
                ask = read_requests(instance, watch.source_key, ledger, time.time())
                if ask:
                    context.log.info(f"retry asked for: {describe(ask)}")
        listing = listing_for(context)

        def look(ask: RetryAsk | None) -> Tick:
            try:
                listed = listing.list(watch.pattern)
            except Exception as err:  # the folder's own error (S3 access denied, ...), credentials masked
                # a driver's error behind it may hold a credential: only its scrubbed words are kept
                raise dg.Failure(scrub(f"listing '{watch.pattern}' in {listing.location} failed: {err}")) from None
            return take_up(ledger, listed, watch, listing.content_id, now=time.time(), deadline=deadline, ask=ask)

        tick = look(ask)
        # Files about to settle are looked at again in this tick rather than one interval later,
        # as long as a quarter of the budget is left for taking them up after the wait.
        while tick.settles_at is not None and (
            (wait := tick.settles_at - time.time()) <= deadline - time.monotonic() - watch.budget_seconds / 4
        ):
            time.sleep(max(wait, 0) + 0.05)
            tick = tick.followed_by(look(None))
        runs, partitions = requests_for(watch, tick.ready)
        if tick.ready:
            ledger.flights.append(flight_for(watch, tick.ready, int(time.time())))
        events = []
        if instance is not None and ledger.failed:
            per_file = watch.partitions_def_name is not None
            cleared = outcomes.loaded_elsewhere(instance, watch.job_name, watch.table_key, per_file, ledger, tick.names)
            if cleared:
                context.log.info(
                    f"{cleared} file(s) that did not load were loaded since by other runs of {watch.job_name}"
                )
        if watch.check_key is not None:
            evaluation = not_loaded.evaluation(
                watch.check_key, ledger, tick.names, instance, watch.partitions_def_name is not None
            )
            events = [evaluation] if evaluation is not None else []
        _log_tick(context, listing, tick)
        summary = (
            f"{tick.listed} file(s) listed in {listing.location}: {len(tick.ready)} taken up"
            f"{f' ({len(tick.retried)} run again)' if tick.retried else ''}, "
            f"{tick.waiting} settling, {tick.deferred} left for the next tick, {len(tick.duplicates)} duplicate(s); "
            f"{time.monotonic() - started:.2f} s"
        )
        context.log.info(summary)
        cursor = ledger.to_cursor()
        if not runs:
            return dg.SensorResult(skip_reason=summary, cursor=cursor, asset_events=events)
        return dg.SensorResult(
            run_requests=runs, dynamic_partitions_requests=partitions, cursor=cursor, asset_events=events
        )

    return watch_files


def _log_tick(context: dg.SensorEvaluationContext, listing: FileListing, tick: Tick) -> None:
    for name, why in tick.skipped:
        context.log.warning(f"{listing.location}: skipped {name!r}: {why}")
    if tick.duplicates:
        shown = ", ".join(f.name for f in tick.duplicates[:10])
        context.log.info(
            f"{len(tick.duplicates)} file(s) hold bytes already run under another name, not run again: {shown}"
        )
    if tick.retried:
        context.log.info(f"run again after a failed run: {', '.join(tick.retried[:10])}")
    if tick.not_retried:
        shown = ", ".join(tick.not_retried[:10])
        context.log.warning(f"retry asked for file(s) that are not among the files that did not load, not run: {shown}")


def _instance_of(context: dg.SensorEvaluationContext) -> dg.DagsterInstance | None:
    try:
        return context.instance
    except dg.DagsterInvariantViolationError:  # a context built in a test without an instance
        return None
