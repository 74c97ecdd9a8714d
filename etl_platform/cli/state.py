"""`etl-platform state`: saved cursors, where each destination keeps them; reset, rewind, history."""

import argparse
import sys
from pathlib import Path

from etl_platform.cli.project import destination_of, pipeline_specs, warehouse
from etl_platform.settings import PROJECT_DEFS


def add_commands(sub) -> None:
    """The ``state`` command group."""
    state = sub.add_parser("state", help="saved incremental cursors").add_subparsers(
        dest="state_command", required=True
    )
    listing = state.add_parser("list", help="every pipeline's saved cursor, wherever its destination keeps it")
    listing.add_argument(
        "--defs", default=str(PROJECT_DEFS), help="defs folder of the pipelines (default: this project's)"
    )
    listing.set_defaults(func=_state_list)
    reset = state.add_parser(
        "reset",
        help="make a pipeline's next load a full refresh (it replaces every row, reading all its files and rows), "
        "or with --to / --to-run a rewind (it replaces the rows from that cursor value on); "
        "says what will happen first",
    )
    reset.add_argument("pipeline")
    reset.add_argument(
        "--defs", default=str(PROJECT_DEFS), help="defs folder of the pipelines (default: this project's)"
    )
    target = reset.add_mutually_exclusive_group()
    target.add_argument(
        "--to", default=None, help="cursor value to rewind to (inclusive: rows at this value are read again)"
    )
    target.add_argument(
        "--to-run", default=None, metavar="RUN_ID", help="rewind to where this run's load started (see state history)"
    )
    reset.add_argument("--yes", action="store_true", help="do it without asking (needed when not on a terminal)")
    reset.set_defaults(func=_state_reset)
    history = state.add_parser(
        "history", help="a pipeline's committed loads, resets and rewinds: run, cursor before and after, rows"
    )
    history.add_argument("pipeline")
    history.add_argument(
        "--defs", default=str(PROJECT_DEFS), help="defs folder of the pipelines (default: this project's)"
    )
    history.add_argument("--limit", type=int, default=50, help="entries to show, newest first (default 50)")
    history.set_defaults(func=_state_history)


def _state_list(args: argparse.Namespace) -> int:
    from etl_platform.destinations.base import WAREHOUSE
    from etl_platform.destinations.warehouse import state as warehouse_state

    with warehouse() as con:
        rows = [(p, c, f"{updated}\t{run_id}") for p, c, updated, run_id in warehouse_state.states(con)]
        defs_root = Path(args.defs)
        for pipeline, spec in pipeline_specs(defs_root).items():
            if spec.destination.connection != WAREHOUSE and spec.sync.mode == "incremental":
                destination = destination_of(pipeline, spec, defs_root)
                rows.append(
                    (pipeline, _scrubbed(lambda d=destination, p=pipeline: d.saved_cursor(con, p)), f"in {destination}")
                )
    if not rows:
        print("no saved cursors")
    for pipeline, cursor, where in rows:
        print(f"{pipeline}\t{cursor}\t{where}")
    return 0


def _scrubbed(read):
    from etl_platform.secrets.references import scrub

    try:
        return read()
    except Exception as err:  # noqa: BLE001 - one unreachable destination should not hide the others
        return scrub(f"(unreadable: {err})")


def _state_destination(pipeline: str, defs_root: Path):
    """The pipeline's spec (None for one since removed) and where its state lives."""
    specs = pipeline_specs(defs_root)
    if pipeline in specs:
        return specs[pipeline], destination_of(pipeline, specs[pipeline], defs_root)
    # a pipeline since removed: its state can still be cleared from the warehouse
    from etl_platform.destinations.warehouse.destination import WarehouseTable
    from etl_platform.destinations.warehouse.tables import TableRef

    return None, WarehouseTable(TableRef(pipeline, pipeline))


def _state_reset(args: argparse.Namespace) -> int:
    """Say what the next load will do, ask, then record it as the pipeline's pending state."""
    from etl_platform.intake import fingerprints
    from etl_platform.secrets.references import scrub

    spec, destination = _state_destination(args.pipeline, Path(args.defs))
    with warehouse() as con:
        try:
            to = args.to
            if args.to_run is not None:
                started = [
                    e
                    for e in destination.history(con, args.pipeline, 10_000)
                    if e.run_id == args.to_run and e.action == "load"
                ]
                if not started:
                    print(
                        f"{args.pipeline}: no load by run {args.to_run!r} in the history (etl-platform state history "
                        f"{args.pipeline})",
                        file=sys.stderr,
                    )
                    return 2
                to = started[-1].cursor_before  # None: that run read from the start, so a full refresh
            rows, _ = destination.summary(con)
            loaded_files = fingerprints.count(con, args.pipeline)
            print(_what_reset_does(args.pipeline, spec, destination, to, rows, loaded_files))
            if not args.yes and not _confirmed():
                print("nothing changed", file=sys.stderr)
                return 1
            before, after = destination.reset_state(con, args.pipeline, to)
            # Files already loaded are skipped by their content: forgetting them lets the next load
            # read them again, and its full refresh or rewind replaces what they loaded.
            forgotten = fingerprints.forget(con, args.pipeline)
        except Exception as err:  # noqa: BLE001 - a destination's error, shown scrubbed
            print(scrub(f"{args.pipeline}: reset failed, nothing changed: {err}"), file=sys.stderr)
            return 1
    print(
        f"{args.pipeline}: cursor {before!r} -> {after!r} in {destination}; {forgotten} loaded file(s) forgotten; "
        f"next load: {'full refresh' if after is None else f'rewind to {after!r}'}"
    )
    return 0


def _what_reset_does(pipeline: str, spec, destination, to: str | None, rows: int, loaded_files: int) -> str:
    files = f", and reads again the {loaded_files:,} file(s) it loaded" if loaded_files else ""
    if to is None:
        return (
            f"{pipeline}: the next load is a full refresh: it replaces every row of {destination} ({rows:,} row(s) "
            "now) "
            f"with what it reads from the whole source{files}."
        )
    cursor = spec.sync.cursor if spec is not None else "the cursor"
    return (
        f"{pipeline}: the next load rewinds to {cursor} = {to!r}: it replaces the rows of {destination} with {cursor} "
        f">= {to!r} "
        f"by the source's rows from that value on ({rows:,} row(s) in the table now){files}."
    )


def _confirmed() -> bool:
    if not sys.stdin.isatty():
        print("not on a terminal: add --yes to confirm", file=sys.stderr)
        return False
    return input("Proceed? [y/N] ").strip().lower() in ("y", "yes")


def _state_history(args: argparse.Namespace) -> int:
    from etl_platform.secrets.references import scrub

    _, destination = _state_destination(args.pipeline, Path(args.defs))
    with warehouse() as con:
        try:
            entries = destination.history(con, args.pipeline, args.limit)
        except Exception as err:  # noqa: BLE001 - a destination's error, shown scrubbed
            print(scrub(f"{args.pipeline}: {err}"), file=sys.stderr)
            return 1
    if not entries:
        print(f"{args.pipeline}: no history in {destination}")
        return 0
    print(f"{args.pipeline}: history in {destination}, newest first")
    print("at\taction\trun\tcursor before\tcursor after\trows written\trows replaced")
    for e in entries:
        print(
            f"{e.at}\t{e.action}\t{e.run_id or '-'}\t{e.cursor_before if e.cursor_before is not None else '-'}\t"
            f"{e.cursor_after if e.cursor_after is not None else '-'}\t"
            f"{'' if e.rows_written is None else e.rows_written}\t"
            f"{'' if e.rows_deleted is None else e.rows_deleted}"
        )
    return 0
