"""Rejected rows: list them, export them for people to fix, and replay them after a fix.

A replay runs the pipeline's *current* mapping and rules over the rows in its rejected
table and, in one warehouse transaction, commits the rows that now pass by the pipeline's
sync mode and removes them from the rejected table; rows that still fail stay, with their
file and line and their reasons as of now. So accepted + rejected = input holds before and
after, and replaying twice adds nothing twice.

What is replayed: rows rejected by a rule or a value that did not convert (kind 'rule'),
whose record holds the row's values. A line that could not be parsed or a file rejected
whole has no values to replay: fix the file and drop it back into the landing folder,
where the next run loads it like any other.

Which rows, by sync mode: replace replays the rejections of the latest load only (older
loads' rows were replaced since) and adds the rows to the table; append adds them; merge
upserts them by primary key; incremental merges them by primary key when it has one, else
appends them, and never moves the saved cursor.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from etl_platform.errors import first_line
from etl_platform.sql import literal, quote

if TYPE_CHECKING:  # the CLI imports this module on every start: DuckDB and the spec only when used
    import duckdb

    from etl_platform.destinations import Destination
    from etl_platform.spec import ColumnSpec, PipelineSpec, SyncSpec
    from etl_platform.steps.load import TableRef

_INPUT = "__replay_input"
_PASSED = "__replay_passed"
_ROW = "__rejected_row"
# A record holds the text as read when a value did not convert (its reasons say which),
# else the row's typed values under the target names.
_CAST_REASON = "%: not a valid %"


@dataclass(frozen=True)
class Replayed:
    candidates: int  # rejected rows looked at
    accepted: int  # now pass: committed and removed from the rejected table
    still_rejected: int
    rows_written: int


def _latest_run(con: duckdb.DuckDBPyConnection, rejected: TableRef) -> str | None:
    from etl_platform.steps import load

    return load.scalar(con, f"SELECT run_id FROM {rejected.sql} ORDER BY rejected_at DESC LIMIT 1")


def candidates_filter(con: duckdb.DuckDBPyConnection, spec: PipelineSpec, rejected: TableRef, where: str | None) -> str:
    """SQL condition on the rejected table selecting the rows a replay retries."""
    conditions = ["kind = 'rule'", "record IS NOT NULL"]
    if spec.sync.mode == "replace":
        latest = _latest_run(con, rejected)
        conditions.append(f"run_id = {literal(latest or '')}")
    if where:
        conditions.append(f"({where})")
    return " AND ".join(conditions)


def _replay_sync(spec: PipelineSpec) -> SyncSpec:
    from etl_platform.spec import SyncSpec

    sync = spec.sync
    if sync.mode == "merge" or (sync.mode == "incremental" and sync.primary_key):
        return SyncSpec(mode="merge", primary_key=list(sync.primary_key))
    return SyncSpec(mode="append")


def _typed_columns(spec: PipelineSpec) -> dict[str, ColumnSpec]:
    """The mapping for records of typed values: read by target name, cast to the target type."""
    from etl_platform.spec import ColumnSpec

    return {name: ColumnSpec(type=col.type) for name, col in spec.source.columns.items()}


def _stage_select(columns: dict[str, ColumnSpec], raw: bool, run_id: str, lineage: bool) -> str:
    """Rows of one record shape as stage rows: values pulled from the JSON record, then
    mapped and cast by the stage's own SQL, cast failures and all."""
    from etl_platform.steps import stage

    sources = dict.fromkeys(c for name, col in columns.items() for c in col.source_columns(name))
    pulled = ", ".join(f"__record ->> {literal(c)} AS {quote(c)}" for c in sources)
    keep = {"_source_file": "__file", "_load_id": literal(run_id)} if lineage else {}
    scan = f"(SELECT {pulled}, __file, {_ROW} FROM {_INPUT} WHERE {'' if raw else 'NOT '}__raw)"
    return stage.mapping_query(columns, scan, lineage={}, keep={**keep, _ROW: _ROW})


def replay(
    con: duckdb.DuckDBPyConnection, spec: PipelineSpec, *, pipeline: str, table: TableRef, rejected: TableRef,
    run_id: str, where: str | None = None, destination: Destination | None = None,
) -> Replayed:
    """Replay the rejected rows of one pipeline (see the module's docstring); all or nothing."""
    from etl_platform.destinations import WarehouseTable
    from etl_platform.steps import load, stage
    from etl_platform.steps.load import TableRef

    if not load.table_exists(con, rejected):
        return Replayed(0, 0, 0, 0)
    committer = destination or WarehouseTable(table)
    if committer.two_phase:
        settle_replays(con, committer, pipeline, rejected)  # a replay interrupted between its two commits
    stage_ref = TableRef(table.schema, f"__stage_{table.name}")
    condition = candidates_filter(con, spec, rejected, where)
    columns = spec.source.columns
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {_INPUT} AS
            SELECT rowid AS {_ROW}, source_file AS __file, record::JSON AS __record,
                   len(list_filter(reasons, lambda r: r LIKE {literal(_CAST_REASON)})) > 0 AS __raw
            FROM {rejected.sql} WHERE {condition}"""
        )
        candidates = load.scalar(con, f"SELECT count(*) FROM {_INPUT}") or 0
        stage_columns = stage.stage_columns(spec, with_cast_errors=True) + [(_ROW, "BIGINT")]
        con.execute(f"DROP TABLE IF EXISTS {stage_ref.sql}")
        con.execute(f"CREATE TABLE {stage_ref.sql} ({', '.join(f'{quote(n)} {t}' for n, t in stage_columns)})")
        for sql in stage.macros(columns):
            con.execute(sql)
        lineage = spec.destination.lineage_columns
        for raw, mapping in ((True, columns), (False, _typed_columns(spec))):
            con.execute(f"INSERT INTO {stage_ref.sql} BY NAME {_stage_select(mapping, raw, run_id, lineage)}")
        rules = stage.compile_rules(spec)
        fails = stage.any_fails(rules, with_cast_errors=True)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_PASSED} AS SELECT {_ROW} FROM {stage_ref.sql} WHERE NOT ({fails})")
        accepted = load.scalar(con, f"SELECT count(*) FROM {_PASSED}") or 0
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __replay_failing AS SELECT {_ROW}, {stage.reasons(rules, with_cast_errors=True)} AS reasons "
            f"FROM {stage_ref.sql} WHERE {fails}"
        )
        con.execute(f"DELETE FROM {stage_ref.sql} WHERE {fails}")
        for column in (stage.CAST_ERRORS, stage.RAW_RECORD, _ROW):
            con.execute(f"ALTER TABLE {stage_ref.sql} DROP COLUMN {quote(column)}")
        written = 0
        if accepted:
            plan = load.Plan(_replay_sync(spec), load_id=run_id)
            committed = committer.commit(
                con, stage_ref, plan, pipeline=pipeline, run_id=run_id,
                data_columns=list(columns), schema_changes=spec.destination.schema_changes,
            )
            written = committed.rows_written
        if committer.two_phase and accepted:
            # The rows leave the rejected table only once the destination has committed them.
            _mark_replayed(con, rejected, run_id)
        else:
            con.execute(f"DELETE FROM {rejected.sql} WHERE rowid IN (SELECT {_ROW} FROM {_PASSED})")
        # Last: updating a list column moves rows, and with them their rowid.
        con.execute(
            f"UPDATE {rejected.sql} SET reasons = f.reasons FROM __replay_failing f "
            f"WHERE {rejected.sql}.rowid = f.{_ROW} AND {rejected.sql}.reasons <> f.reasons"
        )
        con.execute(f"DROP TABLE {stage_ref.sql}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        committer.abandon()
        raise
    if committer.two_phase and accepted:
        committer.finish()
        settle_replays(con, committer, pipeline, rejected)
    return Replayed(candidates, accepted, candidates - accepted, written)


# A replay into another database or a file table: the rows it loaded are named in the warehouse
# (by their identity in the rejected table) before the destination commits, and removed from the
# rejected table after; a crash in between is settled by the next replay from the load id the
# destination recorded. Nothing is lost, nothing loaded twice.
_REPLAYED = "_etl.pending_replays"
_IDENTITY = ("run_id", "source_file", "source_line", "record", "rejected_at")


def _mark_replayed(con: duckdb.DuckDBPyConnection, rejected: TableRef, load_id: str) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {_REPLAYED} (load_id VARCHAR, rejected_table VARCHAR, run_id VARCHAR, source_file VARCHAR, "
        "source_line BIGINT, record VARCHAR, rejected_at TIMESTAMPTZ)"
    )
    con.execute(
        f"INSERT INTO {_REPLAYED} SELECT ?, ?, {', '.join(_IDENTITY)} FROM {rejected.sql} "
        f"WHERE rowid IN (SELECT {_ROW} FROM {_PASSED})",
        [load_id, str(rejected)],
    )


def settle_replays(con: duckdb.DuckDBPyConnection, committer: Destination, pipeline: str, rejected: TableRef) -> None:
    """Remove from the rejected table the rows of replays the destination committed; forget the
    replays it did not (their rows stay rejected)."""
    from etl_platform.steps import load

    if not load.table_exists(con, load.TableRef("_etl", "pending_replays")):
        return
    pending = [row[0] for row in con.execute(f"SELECT DISTINCT load_id FROM {_REPLAYED} WHERE rejected_table = ?", [str(rejected)]).fetchall()]
    if not pending:
        return
    done = committer.committed_loads(con, pipeline, pending)
    same = " AND ".join(f"r.{c} IS NOT DISTINCT FROM p.{c}" for c in _IDENTITY)
    con.execute("BEGIN TRANSACTION")
    try:
        for load_id in pending:
            if load_id in done:
                con.execute(
                    f"DELETE FROM {rejected.sql} AS r WHERE EXISTS (SELECT 1 FROM {_REPLAYED} p WHERE p.load_id = ? AND {same})",
                    [load_id],
                )
            con.execute(f"DELETE FROM {_REPLAYED} WHERE load_id = ?", [load_id])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


# The `etl-platform rejected` commands

REJECTED_HEADER = ("run_id", "source_file", "source_line", "kind", "reasons", "record", "rejected_at")


def _pipeline(args: argparse.Namespace):
    from etl_platform.cli import _pipeline_specs
    from etl_platform.spec_checks import table_names
    from etl_platform.steps.load import TableRef

    specs = _pipeline_specs(Path(args.defs))
    if args.pipeline not in specs:
        raise SystemExit(f"unknown pipeline {args.pipeline!r}; the pipelines are: {', '.join(sorted(specs))}")
    spec = specs[args.pipeline]
    names = table_names(spec, args.pipeline)
    return spec, TableRef(names.schema, names.table), TableRef(names.schema, names.rejected)


def _rows(con, rejected, where: str | None):
    from etl_platform.steps import load

    if not load.table_exists(con, rejected):
        return []
    filter_ = f" WHERE ({where})" if where else ""
    return con.execute(
        f"SELECT {', '.join(REJECTED_HEADER)} FROM {rejected.sql}{filter_} ORDER BY rejected_at, source_file, source_line"
    ).fetchall()


def _list(args: argparse.Namespace) -> int:
    from etl_platform.cli import _warehouse
    from etl_platform.steps import load

    _, _, rejected = _pipeline(args)
    with _warehouse() as con:
        if not load.table_exists(con, rejected):
            print(f"{rejected} does not exist yet: nothing rejected")
            return 0
        filter_ = f" WHERE ({args.where})" if args.where else ""
        summary = con.execute(
            f"SELECT run_id, kind, count(*), min(rejected_at) FROM {rejected.sql}{filter_} GROUP BY ALL ORDER BY 4, 2"
        ).fetchall()
        total = sum(n for _, _, n, _ in summary)
        print(f"{total:,} rejected row(s) in {rejected}")
        for run_id, kind, n, at in summary:
            print(f"  run {run_id}  {kind:<5} {n:>8,}  since {at:%Y-%m-%d %H:%M:%S}")
        for run_id, source_file, line, kind, reasons, _, _ in _rows(con, rejected, args.where)[: args.limit]:
            print(f"{source_file}:{line if line is not None else '-'}\t{kind}\t{'; '.join(reasons)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from etl_platform.cli import _warehouse
    from etl_platform.quality.safe_export import write_csv, write_xlsx

    _, _, rejected = _pipeline(args)
    out = Path(args.out)
    writers = {".csv": write_csv, ".xlsx": write_xlsx}
    if out.suffix.lower() not in writers:
        raise SystemExit(f"{out}: export to a .csv or .xlsx file")
    with _warehouse() as con:
        rows = [(*r[:4], list(r[4]), *r[5:]) for r in _rows(con, rejected, args.where)]
    written = writers[out.suffix.lower()](out, REJECTED_HEADER, rows)
    print(f"wrote {written:,} rejected row(s) of {rejected} to {out}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    import uuid

    import duckdb

    from etl_platform.cli import _destination_of, _warehouse

    spec, table, rejected = _pipeline(args)
    destination = _destination_of(args.pipeline, spec, Path(args.defs))
    run_id = f"replay-{uuid.uuid4()}"
    with _warehouse() as con:
        try:
            done = replay(con, spec, pipeline=args.pipeline, table=table, rejected=rejected, run_id=run_id,
                          where=args.where, destination=destination)
        except duckdb.Error as err:
            raise SystemExit(f"replay of {args.pipeline} failed, nothing changed: {first_line(err)}") from None
    print(
        f"{args.pipeline}: replayed {done.candidates:,} rejected row(s): {done.accepted:,} now pass and were loaded "
        f"into {destination} ({done.rows_written:,} written, load id {run_id}); {done.still_rejected:,} still rejected"
    )
    return 0


def add_rejected_commands(sub, defs_default: str) -> None:
    """`etl-platform rejected list|export|replay PIPELINE`."""
    rejected = sub.add_parser("rejected", help="a pipeline's rejected rows: list, export, replay").add_subparsers(
        dest="rejected_command", required=True
    )
    helps = {
        "list": (_list, "rejected rows by run and kind, then each row's file, line and reasons"),
        "export": (_export, "write the rejected rows to a .csv or .xlsx file to fix (cells that could run as formulas are quoted)"),
        "replay": (_replay, "run the current mapping and rules over the rejected rows; load those that now pass"),
    }
    for name, (func, help_) in helps.items():
        command = rejected.add_parser(name, help=help_)
        command.add_argument("pipeline")
        command.add_argument("--where", default=None, help="SQL condition on the rejected table, e.g. \"source_file LIKE '%%2024-05%%'\"")
        command.add_argument("--defs", default=defs_default, help="defs folder of the pipelines (default: this project's)")
        if name == "export":
            command.add_argument("--out", required=True, help="file to write: .csv or .xlsx")
        if name == "list":
            command.add_argument("--limit", type=int, default=50, help="rows to print after the summary (default 50)")
        command.set_defaults(func=func)
