"""The check ``files_not_loaded``: files a pipeline's file sensor saw that are not loaded.

It lists each file still in the folder whose run failed for good (with the run and its
error, secrets masked, cut to a few hundred characters) and each file whose name kept it
from being taken up; it passes when every file seen was loaded. Its severity is WARN: the
other files load regardless.

The sensor evaluates it: it knows which runs failed, and Dagster records the check
evaluations a sensor returns. It reports only when the list changes. The check is declared
on the pipeline's ``source_files`` asset, not on its table, because Dagster executes the
checks of every asset a job selects: a check on the table would add a step to every load
run, where nothing knows what the sensor knows. Executing it by hand restates the sensor's
latest finding.
"""

import dagster as dg

from etl_platform.automation.ledger import Failure, Ledger, digest, file_run_key
from etl_platform.automation.listing import unsafe_name
from etl_platform.automation.outcomes import failure_message, shorten

CHECK_NAME = "files_not_loaded"
SHOWN = 50  # files listed with their error; the count covers them all
_DESCRIBED = 5


def not_loaded(ledger: Ledger, names: dict[bytes, str]) -> list[tuple[str, bytes | None, Failure | None]]:
    """(name, content, failure) of each listed file not loaded, by name; content and failure are
    None for a file skipped for its name."""
    entries = [
        (names[ident], content, failure)
        for content, failure in ledger.failed.items()
        for ident in failure.identities
        if ident in names
    ]
    entries += [(names[ident], None, None) for ident in ledger.skipped if ident in names]
    return sorted(entries, key=lambda entry: entry[0])


def evaluation(
    check_key: dg.AssetCheckKey,
    ledger: Ledger,
    names: dict[bytes, str],
    instance: dg.DagsterInstance | None,
    per_file: bool,
) -> dg.AssetCheckEvaluation | None:
    """The check's result for the files listed now, or None when it is what was reported last."""
    entries = not_loaded(ledger, names)
    state = digest("not loaded", *(f"{name}\x1e{failure.run_id if failure else '-'}" for name, _, failure in entries))
    if state == ledger.reported:
        return None
    ledger.reported = state
    errors: dict[tuple, str] = {}
    shown = []
    for name, content, failure in entries[:SHOWN]:
        if failure is None:
            error = f"not taken up: {unsafe_name(name)}"
        else:
            key = file_run_key(content, failure.attempt) if per_file else None
            if (failure.run_id, key) not in errors:
                errors[failure.run_id, key] = (
                    failure_message(instance, failure.run_id, key)
                    if instance is not None
                    else shorten(f"run {failure.run_id} failed")
                )
            error = errors[failure.run_id, key]
        shown.append({"file": name, "run_id": failure.run_id if failure else None, "error": error})
    metadata = {"files_not_loaded": len(entries), "files": dg.MetadataValue.json(shown)}
    if entries:
        described = "; ".join(f"{e['file']}: {e['error']}" for e in shown[:_DESCRIBED])
        more = f"; and {len(entries) - _DESCRIBED} more" if len(entries) > _DESCRIBED else ""
        description = f"{len(entries)} file(s) seen but not loaded: {described}{more}"
    else:
        description = "Every file the sensor saw was loaded."
    return dg.AssetCheckEvaluation(
        asset_key=check_key.asset_key,
        check_name=check_key.name,
        passed=not entries,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=description,
    )


def files_not_loaded_check(source_key: dg.AssetKey, sensor_name: str) -> dg.AssetChecksDefinition:
    """The check's definition on the pipeline's source files."""
    check_key = dg.AssetCheckKey(source_key, CHECK_NAME)

    @dg.asset_check(
        asset=source_key,
        name=CHECK_NAME,
        description=f"Every file {sensor_name} saw was loaded. Evaluated by the sensor; lists the files whose run "
        "failed (run and error) or whose name kept them from being taken up.",
    )
    def files_not_loaded(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        latest = latest_report(context.instance, check_key)
        if latest is None:
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{sensor_name} has reported no file that did not load.",
            )
        return dg.AssetCheckResult(
            passed=latest.passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={k: v for k, v in latest.metadata.items()},
            description=f"As {sensor_name} last reported: {latest.description}",
        )

    return files_not_loaded


def latest_report(instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, scan: int = 50):
    """The check's latest evaluation reported by the sensor (outside any run), or None."""
    from etl_platform.dagster_private.run_records import COMPLETED_CHECK_STATUSES

    history = instance.event_log_storage.get_asset_check_execution_history(
        check_key, limit=scan, status=set(COMPLETED_CHECK_STATUSES)
    )
    for record in history:
        if not record.run_id and record.event is not None and record.event.dagster_event is not None:
            return record.event.dagster_event.event_specific_data
    return None
