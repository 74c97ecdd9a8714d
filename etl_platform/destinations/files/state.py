"""A file table's state, kept in its manifest: the saved cursor, the history, the committed loads."""

from dataclasses import replace as with_changes
from datetime import UTC, datetime

from etl_platform.destinations.files.storage import FilesLocation
from etl_platform.destinations.warehouse import state as warehouse_state


def read_state(location: FilesLocation, schema: str, table: str) -> warehouse_state.State:
    manifest, _ = location.table(schema, table).read_manifest()
    return (
        warehouse_state.State(manifest.cursor, manifest.pending, manifest.rewind_from)
        if manifest
        else warehouse_state.State()
    )


def saved_cursor(location: FilesLocation, schema: str, table: str) -> str | None:
    return read_state(location, schema, table).cursor


def reset_state(
    location: FilesLocation, schema: str, table: str, *, to: str | None, run_id: str = "reset"
) -> tuple[str | None, str | None]:
    """Make the table's next load a full refresh (``to`` None: it replaces every row) or a rewind
    to ``to`` (it replaces the rows from that cursor value on), in a new manifest version with
    the same files. Returns the cursor before and after."""
    target = location.table(schema, table)
    manifest, _ = target.read_manifest()
    if manifest is None:
        if to is None:
            return None, None
        raise FileNotFoundError(f"no table at {target}: there is no cursor to rewind")
    pending, rewind_from = (warehouse_state.FULL_REFRESH, None) if to is None else (warehouse_state.REWIND, to)
    entry = _entry("reset" if to is None else "rewind", None, None, manifest.cursor, to, None, None)
    target.put_manifest(
        with_changes(
            manifest,
            version=manifest.version + 1,
            cursor=to,
            run_id=run_id,
            committed_at=_now(),
            pending=pending,
            rewind_from=rewind_from,
            history=(*manifest.history, entry)[-HISTORY_KEPT:],
        ),
        manifest,
    )
    return manifest.cursor, to


# Committing


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


HISTORY_KEPT = 200  # history entries a manifest keeps


def _entry(
    action: str,
    run_id: str | None,
    load_id: str | None,
    before: str | None,
    after: str | None,
    written: int | None,
    deleted: int | None,
) -> dict:
    return {
        "at": _now(),
        "action": action,
        "run_id": run_id,
        "load_id": load_id,
        "cursor_before": before,
        "cursor_after": after,
        "rows_written": written,
        "rows_deleted": deleted,
    }


def committed_loads(location: FilesLocation, schema: str, table: str, load_ids: list[str]) -> set[str]:
    """Which of ``load_ids`` the table's manifest records as committed."""
    manifest, _ = location.table(schema, table).read_manifest()
    recorded = {entry.get("load_id") for entry in (manifest.history if manifest else ())}
    return {load_id for load_id in load_ids if load_id in recorded}


def history(location: FilesLocation, schema: str, table: str, limit: int = 100) -> list[warehouse_state.HistoryEntry]:
    manifest, _ = location.table(schema, table).read_manifest()
    entries = list(manifest.history if manifest else ())[::-1][:limit]
    return [
        warehouse_state.HistoryEntry(
            e.get("at", ""),
            e.get("action", ""),
            e.get("run_id"),
            e.get("load_id"),
            e.get("cursor_before"),
            e.get("cursor_after"),
            e.get("rows_written"),
            e.get("rows_deleted"),
        )
        for e in entries
    ]
