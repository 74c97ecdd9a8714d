"""What a load reports: the table's metadata, the rejected table's, and the load's checks."""

import dagster as dg

from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import load_result

CHECK_REJECTED_SHARE = "rejected_rows_within_limit"
CHECK_FILES_READABLE = "all_files_readable"
CHECK_SCHEMA_DRIFT = "schema_drift"


def schema_of(columns: list[tuple[str, str]]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, dtype) for name, dtype in columns])


def refused_results(spec: PipelineSpec, result: load_result.LoadResult, table_key, rejected_key, rejected_total: int):
    """What a load that was refused (nothing to replace the table with) reports: the rejected
    rows it recorded, and its checks failed with the reason. The table was not changed."""
    yield dg.MaterializeResult(
        asset_key=rejected_key,
        metadata={
            "dagster/row_count": rejected_total,
            "rows_rejected_this_run": result.rows_rejected,
            "rejected_by_reason": dg.MetadataValue.json(result.rejected_by_reason),
            "files": dg.MetadataValue.md(files_table(result)),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=table_key,
        check_name=CHECK_REJECTED_SHARE,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR if spec.checks.blocking else dg.AssetCheckSeverity.WARN,
        metadata={
            "reason": f"{result.refused}: the table was left as it was",
            "rows_rejected": result.rows_rejected,
            "rows_read": result.rows_read,
        },
    )
    yield dg.AssetCheckResult(
        asset_key=table_key,
        check_name=CHECK_FILES_READABLE,
        passed=not result.files_rejected,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"files_rejected": dg.MetadataValue.json({f.file: f.rejected_whole for f in result.files_rejected})},
    )


def load_results(
    spec: PipelineSpec, result: load_result.LoadResult, table_key, rejected_key, rejected_total: int, extra: dict
):
    share = result.rows_rejected / result.rows_read if result.rows_read else 0.0
    rows_per_second = result.rows_read / result.seconds if result.seconds > 0 else 0.0
    committed = result.committed
    metadata = {
        "rows_read": result.rows_read,
        "rows_accepted": result.rows_accepted,
        "rows_rejected": result.rows_rejected,
        "rows_superseded": result.rows_superseded,
        "rows_written": committed.rows_written,
        # Q: every row read is written, rejected, superseded by a later row of its key, below the
        # cursor, or (re-read) loaded already.
        "rows_accounted_for": dg.MetadataValue.md(_accounting(result)),
        "files_read": len(result.files) - len(result.files_rejected) - len(result.files_duplicate),
        "files_duplicate": len(result.files_duplicate),
        "files_rejected": len(result.files_rejected),
        "duration_seconds": round(result.seconds, 3),
        "rows_per_second": round(rows_per_second),
        "sync_mode": spec.sync.mode,
        "files": dg.MetadataValue.md(files_table(result)),
        **extra,
    }
    if result.table_rows is not None:
        metadata |= {"dagster/row_count": result.table_rows, "dagster/column_schema": schema_of(result.columns)}
    if committed.rows_deleted:
        metadata["rows_replaced"] = committed.rows_deleted
    if result.notices:
        metadata["source_notices"] = dg.MetadataValue.md("\n".join(f"- {notice}" for notice in result.notices))
    if spec.sync.mode == "incremental":
        metadata |= {
            "cursor_before": committed.cursor_before or "",
            "cursor_after": committed.cursor_after or "",
            "rows_before_cursor": committed.rows_before_cursor,
            "rows_already_loaded": committed.rows_already_loaded,
        }
    yield dg.MaterializeResult(asset_key=table_key, metadata=metadata)
    yield dg.MaterializeResult(
        asset_key=rejected_key,
        metadata={
            "dagster/row_count": rejected_total,
            "rows_rejected_this_run": result.rows_rejected,
            "rejected_by_reason": dg.MetadataValue.json(result.rejected_by_reason),
        },
    )
    limit = spec.checks.max_rejected_fraction
    read_files = [f for f in result.files if not f.duplicate_of]
    # 0 rows rejected of 0 read is no pass when every file was rejected whole.
    all_rejected = bool(read_files) and all(f.rejected_whole for f in read_files)
    check_metadata = {
        "rejected_share": round(share, 6),
        "limit": limit,
        "rows_rejected": result.rows_rejected,
        "rows_read": result.rows_read,
    }
    if all_rejected:
        check_metadata["reason"] = f"all {len(read_files)} file(s) were rejected whole"
    yield dg.AssetCheckResult(
        asset_key=table_key,
        check_name=CHECK_REJECTED_SHARE,
        passed=share <= limit and not all_rejected,
        severity=dg.AssetCheckSeverity.ERROR if spec.checks.blocking else dg.AssetCheckSeverity.WARN,
        metadata=check_metadata,
    )
    drift = result.committed.drift
    yield dg.AssetCheckResult(
        asset_key=table_key,
        check_name=CHECK_SCHEMA_DRIFT,
        passed=not drift,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "policy": spec.destination.schema_changes,
            "difference": drift.describe() if drift else "no change",
            "new_columns": dg.MetadataValue.json(list(drift.added) if drift else []),
            "missing_columns": dg.MetadataValue.json(list(drift.dropped) if drift else []),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=table_key,
        check_name=CHECK_FILES_READABLE,
        passed=not result.files_rejected,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"files_rejected": dg.MetadataValue.json({f.file: f.rejected_whole for f in result.files_rejected})},
    )


def _accounting(result: load_result.LoadResult) -> str:
    c = result.committed
    parts = [
        ("written", c.rows_written),
        ("rejected", result.rows_rejected),
        ("superseded", result.rows_superseded),
        ("below the cursor", c.rows_before_cursor),
        ("loaded already", c.rows_already_loaded),
    ]
    shown = " + ".join(f"{n:,} {what}" for what, n in parts if n or what in ("written", "rejected"))
    total = sum(n for _, n in parts)
    return f"{result.rows_read:,} read = {shown}" + ("" if total == result.rows_read else f" (= {total:,})")


def files_table(result: load_result.LoadResult) -> str:
    lines = ["| file | rows read | rows rejected | note |", "| --- | ---: | ---: | --- |"]
    for f in result.files[:200]:
        note = f"rejected whole: {f.rejected_whole}" if f.rejected_whole else ""
        if f.duplicate_of:
            note = f"skipped as a duplicate: {f.duplicate_of}"
        if f.left_for_later:
            note = f.left_for_later
        # A name is shown as it is: characters Markdown would read as table or emphasis syntax are escaped.
        shown = "".join("\\" + c if c in "\\|*`" else c for c in f.file)
        lines.append(f"| {shown} | {f.rows_read:,} | {f.rows_rejected:,} | {note} |")
    if len(result.files) > 200:
        lines.append(f"| … {len(result.files) - 200} more | | | |")
    return "\n".join(lines)
