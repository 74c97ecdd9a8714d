"""What became of the runs a file sensor asked for, read from Dagster's run records.

Each tick looks up only the runs the ledger still waits for, by their run keys, and only
those that finished; a run queued or running is not read again until it ends. A request
with no run at all after ``LAUNCH_GRACE_SECONDS`` (deleted from the UI, or never launched)
counts as not loaded. Files that did not load are also cleared when another run of the
pipeline's job loaded them after the failure: a re-execution from the UI, a partition
materialized by hand, or (one run reading every file) any later successful run.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from dagster import DagsterRunStatus

from etl_platform.automation.ledger import (
    NO_IDENTITY,
    TAG_CONTENT,
    TAG_CONTENTS,
    Failure,
    Flight,
    Ledger,
    Member,
    parse_token,
)
from etl_platform.dagster_private.run_records import (
    FINISHED_STATUSES,
    PARTITION_NAME_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
    WILL_RETRY_TAG,
)
from etl_platform.secrets.references import scrub

LAUNCH_GRACE_SECONDS = 600
RETRY_GRACE_SECONDS = 600  # a failed run Dagster says it retries counts as failed if no retry has ended by then
CLOCK_MARGIN_SECONDS = (
    1.0  # a run counts as later than a failure if created this long after it (clocks differ a little)
)
ERROR_CHARS = 300
_KEYS_PER_QUERY = 1000


@dataclass
class Followed:
    """What one look at the runs found."""

    loaded: int = 0
    failed: int = 0


def follow_runs(instance: dg.DagsterInstance, sensor_name: str, ledger: Ledger, now: float) -> Followed:
    """Settle the ledger's runs that ended: their files loaded, or are recorded as not loaded."""
    followed = Followed()
    if not ledger.flights:
        return followed
    keys = {flight.run_key(member) for flight, member in ledger.in_flight()}
    finished = runs_by_key(instance, sensor_name, keys, FINISHED_STATUSES)
    overdue = {
        flight.run_key(member)
        for flight, member in ledger.in_flight()
        if not member.seen and now - flight.requested_at >= LAUNCH_GRACE_SECONDS
    } - finished.keys()
    launched = runs_by_key(instance, sensor_name, overdue) if overdue else {}
    for flight in ledger.flights:
        waiting = []
        for content, members in _by_content(flight.members).items():
            key = flight.run_key(members[0])
            if key in launched:
                for member in members:
                    member.seen = True
            if key in finished:
                ended = outcome_of(finished[key], now)
            elif key in overdue and key not in launched:
                ended = Ended(False, None, now)
            else:
                ended = None
            if ended is None:
                waiting += members
                continue
            if ended.loaded:
                followed.loaded += len(members)
                continue
            listed = {m.identity for m in members if m.identity in ledger.taken}  # a placeholder identity never is
            ledger.record_failure(content, Failure(members[0].attempt, ended.run_id, ended.at, listed))
            followed.failed += len(listed)
        flight.members = waiting
    ledger.flights = [f for f in ledger.flights if f.members]
    return followed


@dataclass(frozen=True)
class Ended:
    loaded: bool
    run_id: str | None  # the run that loaded, or the latest that failed; None: no run was found
    at: float  # when it ended


def outcome_of(records: list, now: float) -> Ended | None:
    """How a run key's finished runs ended, or None while Dagster is still to retry a failed one."""
    for record in records:
        if record.dagster_run.status == DagsterRunStatus.SUCCESS:
            return Ended(True, record.dagster_run.run_id, record.end_time or _seconds(record.update_timestamp))
    latest = max(records, key=lambda r: _seconds(r.create_timestamp))
    ended = latest.end_time or _seconds(latest.update_timestamp)
    if latest.dagster_run.tags.get(WILL_RETRY_TAG) == "true" and now - ended < RETRY_GRACE_SECONDS:
        return None
    return Ended(False, latest.dagster_run.run_id, ended)


def _by_content(members: list[Member]) -> dict[bytes, list[Member]]:
    groups: dict[bytes, list[Member]] = {}
    for member in members:
        groups.setdefault(member.content, []).append(member)
    return groups


def recall(instance: dg.DagsterInstance, sensor_name: str, ledger: Ledger, now: float) -> int:
    """Refill a lost ledger from the runs this sensor asked for; returns how many contents it recalled.

    Every content run is remembered (so nothing runs twice); runs not finished yet are waited for
    again; contents whose runs all failed are failures again, which the files still holding them
    rejoin when they are listed (without a retry: they are the same files, not dropped again).
    """
    by_key: dict[str, list] = {}
    for record in instance.get_run_records(filters=dg.RunsFilter(tags={SENSOR_NAME_TAG: sensor_name})):
        if key := record.dagster_run.tags.get(RUN_KEY_TAG):
            by_key.setdefault(key, []).append(record)
    best: dict[bytes, tuple] = {}  # content -> (rank, attempt, key, outcome, requested at): loaded > waiting > failed
    recalled = 0
    for key, records in by_key.items():
        covered = _covered_by(key, records[0].dagster_run.tags)
        unfinished = any(not r.dagster_run.is_finished for r in records)
        outcome = None if unfinished else outcome_of(records, now)
        rank = 1 if outcome is None else 2 if outcome.loaded else 0
        requested = int(min(_seconds(r.create_timestamp) for r in records))
        for content, attempt in covered:
            ledger.remember_content(content)
            recalled += 1
            state = (rank, attempt, key, outcome, requested)
            if content not in best or state[:2] > best[content][:2]:
                best[content] = state
    flights: dict[str, Flight] = {}
    for content, (rank, attempt, key, outcome, requested) in best.items():
        if rank == 1:
            batch_key = bytes.fromhex(key.removeprefix("files:")) if key.startswith("files:") else None
            flight = flights.setdefault(key, Flight(requested, [], batch_key))
            flight.members.append(Member(content, NO_IDENTITY, attempt, seen=True))
        elif rank == 0:
            ledger.record_failure(content, Failure(attempt, outcome.run_id, outcome.at, recalled=True))
    ledger.flights.extend(flights.values())
    return recalled


def _covered_by(key: str, tags) -> list[tuple[bytes, int]]:
    """(content, attempt) of each file a run of this sensor covers, from its run key and tags
    (none for tags edited by hand into something else)."""
    try:
        if key.startswith("file:") and tags.get(TAG_CONTENT):
            _, _, retry = key.partition(":retry-")
            return [(bytes.fromhex(tags[TAG_CONTENT]), int(retry or 0))]
        return [parse_token(token) for token in tags.get(TAG_CONTENTS, "").split(",") if token]
    except ValueError:
        return []


def runs_by_key(
    instance: dg.DagsterInstance, sensor_name: str, keys: Iterable[str], statuses: list | None = None
) -> dict[str, list]:
    """This sensor's run records by run key (re-executions share their parent's key and tags)."""
    found: dict[str, list] = {}
    keys = sorted(keys)
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[start : start + _KEYS_PER_QUERY]
        records = instance.get_run_records(filters=dg.RunsFilter(tags={RUN_KEY_TAG: chunk}, statuses=statuses))
        for record in records:
            tags = record.dagster_run.tags
            if tags.get(SENSOR_NAME_TAG) == sensor_name:
                found.setdefault(tags[RUN_KEY_TAG], []).append(record)
    return found


def loaded_elsewhere(
    instance: dg.DagsterInstance,
    job_name: str,
    table_key: dg.AssetKey | None,
    per_file: bool,
    ledger: Ledger,
    names: dict[bytes, str],
) -> int:
    """Clear failures that a later successful run of the job loaded; returns how many.

    A per-file run loads its partition's file; any other run of the job reads every file of
    the source, so a success created after a failure covers it.
    """
    listed = {content: failure for content, failure in ledger.failed.items() if failure.identities}
    if not listed:
        return 0
    since = datetime.fromtimestamp(min(f.failed_at for f in listed.values()), tz=UTC)
    if per_file:
        by_name = {names[i]: content for content, f in listed.items() for i in f.identities if i in names}
        wanted = sorted(by_name)
        records = []
        for start in range(0, len(wanted), _KEYS_PER_QUERY):
            tags = {PARTITION_NAME_TAG: wanted[start : start + _KEYS_PER_QUERY]}
            records += instance.get_run_records(
                filters=dg.RunsFilter(
                    job_name=job_name, statuses=[DagsterRunStatus.SUCCESS], tags=tags, created_after=since
                )
            )
        latest: dict[bytes, float] = {}
        for record in records:
            content = by_name.get(record.dagster_run.tags.get(PARTITION_NAME_TAG))
            if content is not None and _loads(record, table_key):
                latest[content] = max(latest.get(content, 0.0), _seconds(record.create_timestamp))
    else:
        newest = next(
            (
                r
                for r in instance.get_run_records(
                    filters=dg.RunsFilter(job_name=job_name, statuses=[DagsterRunStatus.SUCCESS], created_after=since),
                    limit=20,
                )
                if _loads(r, table_key)
            ),
            None,
        )
        latest = {content: _seconds(newest.create_timestamp) for content in listed} if newest else {}
    cleared = [c for c, created in latest.items() if created >= listed[c].failed_at + CLOCK_MARGIN_SECONDS]
    for content in cleared:
        del ledger.failed[content]
    return len(cleared)


def failure_message(instance: dg.DagsterInstance, run_id: str | None, run_key: str | None = None) -> str:
    """Why a run did not load its files, in a few hundred characters, secrets masked."""
    from dagster import DagsterEventType

    if run_id is None:
        return (
            f"no run was found for run key {run_key}: it was deleted, or never launched"
            if run_key
            else "no run was found"
        )
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        return f"run {run_id} was deleted"
    if record.dagster_run.status == DagsterRunStatus.CANCELED:
        return f"run {run_id} was canceled"
    events = instance.get_records_for_run(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}
    ).records
    message = None
    for event in events:
        dagster_event = event.event_log_entry.dagster_event
        if dagster_event.event_type == DagsterEventType.STEP_FAILURE:
            error = dagster_event.event_specific_data.error
            while (
                error is not None and error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError"
            ):
                error = error.cause  # the step's own error, not Dagster's wrapper around it
            message = error.message if error else dagster_event.message
            break
        message = message or dagster_event.message
    return shorten(message or f"run {run_id} failed (no error was recorded)")


def shorten(text: str) -> str:
    text = " ".join(scrub(text).split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _loads(record, table_key: dg.AssetKey | None) -> bool:
    """Whether a run of the job loaded the table (a run of only its downstream models did not);
    no selection is the whole job."""
    selection = record.dagster_run.asset_selection
    return table_key is None or not selection or table_key in selection


def _seconds(moment: datetime | float) -> float:
    if isinstance(moment, (int, float)):
        return float(moment)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
