"""`etl-platform rejected`: list, export and replay a pipeline's rejected rows."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from etl_platform.cli.project import destination_of, pipeline_specs, warehouse
from etl_platform.errors import first_line
from etl_platform.settings import PROJECT_DEFS

if TYPE_CHECKING:  # the CLI imports this module on every start: DuckDB and the spec only when used
    pass

from etl_platform.steps.replay import replay

# The `etl-platform rejected` commands

REJECTED_HEADER = ("run_id", "source_file", "source_line", "kind", "reasons", "record", "rejected_at")


def _pipeline(args: argparse.Namespace):
    from etl_platform.destinations.warehouse.tables import TableRef
    from etl_platform.spec.tables import table_names

    specs = pipeline_specs(Path(args.defs))
    if args.pipeline not in specs:
        raise SystemExit(f"unknown pipeline {args.pipeline!r}; the pipelines are: {', '.join(sorted(specs))}")
    spec = specs[args.pipeline]
    names = table_names(spec, args.pipeline)
    return spec, TableRef(names.schema, names.table), TableRef(names.schema, names.rejected)


def _rows(con, rejected, where: str | None):
    from etl_platform.destinations.warehouse import tables as warehouse_tables

    if not warehouse_tables.table_exists(con, rejected):
        return []
    filter_ = f" WHERE ({where})" if where else ""
    return con.execute(
        f"SELECT {', '.join(REJECTED_HEADER)} FROM {rejected.sql}{filter_} ORDER BY rejected_at, source_file, "
        "source_line"
    ).fetchall()


def _list(args: argparse.Namespace) -> int:
    from etl_platform.destinations.warehouse import tables as warehouse_tables

    _, _, rejected = _pipeline(args)
    with warehouse() as con:
        if not warehouse_tables.table_exists(con, rejected):
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
        for _run_id, source_file, line, kind, reasons, _, _ in _rows(con, rejected, args.where)[: args.limit]:
            print(f"{source_file}:{line if line is not None else '-'}\t{kind}\t{'; '.join(reasons)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from etl_platform.destinations.safe_export import write_csv, write_xlsx

    _, _, rejected = _pipeline(args)
    out = Path(args.out)
    writers = {".csv": write_csv, ".xlsx": write_xlsx}
    if out.suffix.lower() not in writers:
        raise SystemExit(f"{out}: export to a .csv or .xlsx file")
    with warehouse() as con:
        rows = [(*r[:4], list(r[4]), *r[5:]) for r in _rows(con, rejected, args.where)]
    written = writers[out.suffix.lower()](out, REJECTED_HEADER, rows)
    print(f"wrote {written:,} rejected row(s) of {rejected} to {out}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    import uuid

    import duckdb

    spec, table, rejected = _pipeline(args)
    destination = destination_of(args.pipeline, spec, Path(args.defs))
    run_id = f"replay-{uuid.uuid4()}"
    with warehouse() as con:
        try:
            done = replay(
                con,
                spec,
                pipeline=args.pipeline,
                table=table,
                rejected=rejected,
                run_id=run_id,
                where=args.where,
                destination=destination,
            )
        except duckdb.Error as err:
            # DuckDB's error can quote the replayed rows' values, of sensitive columns too: its first line only
            raise SystemExit(f"replay of {args.pipeline} failed, nothing changed: {first_line(err)}") from None
    print(
        f"{args.pipeline}: replayed {done.candidates:,} rejected row(s): {done.accepted:,} now pass and were loaded "
        f"into {destination} ({done.rows_written:,} written, load id {run_id}); {done.still_rejected:,} still rejected"
    )
    return 0


def add_commands(sub, defs_default: str = str(PROJECT_DEFS)) -> None:
    """`etl-platform rejected list|export|replay PIPELINE`."""
    rejected = sub.add_parser("rejected", help="a pipeline's rejected rows: list, export, replay").add_subparsers(
        dest="rejected_command", required=True
    )
    helps = {
        "list": (_list, "rejected rows by run and kind, then each row's file, line and reasons"),
        "export": (
            _export,
            "write the rejected rows to a .csv or .xlsx file to fix (cells that could run as formulas are quoted)",
        ),
        "replay": (_replay, "run the current mapping and rules over the rejected rows; load those that now pass"),
    }
    for name, (func, help_) in helps.items():
        command = rejected.add_parser(name, help=help_)
        command.add_argument("pipeline")
        command.add_argument(
            "--where", default=None, help="SQL condition on the rejected table, e.g. \"source_file LIKE '%%2024-05%%'\""
        )
        command.add_argument(
            "--defs", default=defs_default, help="defs folder of the pipelines (default: this project's)"
        )
        if name == "export":
            command.add_argument("--out", required=True, help="file to write: .csv or .xlsx")
        if name == "list":
            command.add_argument("--limit", type=int, default=50, help="rows to print after the summary (default 50)")
        command.set_defaults(func=func)
