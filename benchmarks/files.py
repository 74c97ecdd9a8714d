"""Plain DuckDB vs. the marketing pipeline through Dagster on one generated CSV, plus
code-location load times.

Run from the repository root:

    .venv/bin/python -m benchmarks.files [--rows 2000000] [--rounds 3] [--pipelines 500]

Prints a table and writes the same numbers to benchmarks/.data/last_run.json.
See benchmarks/README.md for what each number means.
"""

import argparse
import json
import os
import platform
import sys

from benchmarks import report, workspace
from benchmarks.prepare import prepare_csv, warm_up
from benchmarks.processes import ChildFailed, Measured, own_peak_mib, run_command, run_probe


class CountMismatch(RuntimeError):
    """A measurement did not load exactly the rows of the file: its time would mean nothing."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.files",
        description=__doc__.split("\n\n")[0],
        epilog="See benchmarks/README.md for what each number means.",
    )
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in the campaign CSV (default 2,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each side, alternating (default 3)")
    parser.add_argument("--pipelines", type=int, default=500, help="pipelines in the load-time test (default 500)")
    args = parser.parse_args(argv)
    for name in ("rows", "rounds", "pipelines"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def _check_rows(name: str, read: int, accepted: int | None, rejected: int | None, rows: int) -> None:
    if read != rows or (accepted is not None and accepted + rejected != read):
        raise CountMismatch(
            f"{name}: the file has {rows:,} rows but it read {read:,}"
            + ("" if accepted is None else f" (accepted {accepted:,} + rejected {rejected:,})")
        )


def _measure_load(rows: int, rounds: int, env: dict[str, str]) -> tuple[list[Measured], list[Measured]]:
    """Alternate plain DuckDB and the pipeline, each on a fresh database file in a fresh process."""
    floor, ours = [], []
    for n in range(1, rounds + 1):
        workspace.remove_database(workspace.FLOOR_DB)
        params = {"csv": str(workspace.CSV), "database": str(workspace.FLOOR_DB)}
        a = run_probe("plain_duckdb", params, env=env, log=workspace.RUNS / f"plain_duckdb_{n}.log")
        _check_rows("plain DuckDB", a.result["rows"], None, None, rows)
        floor.append(a)
        print(
            f"round {n}/{rounds}  plain DuckDB  {a.result['seconds']:7.2f} s"
            f"   (process {a.wall_seconds:.2f} s, peak {a.peak_mib:.0f} MiB)",
            flush=True,
        )

        workspace.remove_database(workspace.WAREHOUSE)
        b = run_probe("pipeline", {}, env=env, log=workspace.RUNS / f"pipeline_{n}.log")
        r = b.result
        _check_rows("our pipeline", r["rows_read"], r["rows_accepted"], r["rows_rejected"], rows)
        ours.append(b)
        print(
            f"round {n}/{rounds}  our pipeline  {r['seconds']:7.2f} s   (load step {r['duration_seconds']:.2f} s,"
            f" process {b.wall_seconds:.2f} s, peak {b.peak_mib:.0f} MiB)",
            flush=True,
        )
    workspace.remove_database(workspace.FLOOR_DB)
    workspace.remove_database(workspace.WAREHOUSE)
    return floor, ours


def run(argv: list[str] | None = None) -> dict:
    """The whole benchmark: prepare, measure, print the table, save and return the summary."""
    args = _parse(argv)
    env = workspace.child_env()
    workspace.reset()
    csv = prepare_csv(args.rows, env)
    warm_up()
    floor, ours = _measure_load(args.rows, args.rounds, env)

    print("loading the code location ...", flush=True)
    location = run_probe("code_location", {}, env=env, log=workspace.RUNS / "code_location.log")
    validate = run_command(workspace.VALIDATE_ARGV, env=env, log=workspace.RUNS / "definitions_validate.log")
    print(f"loading {args.pipelines} pipelines ...", flush=True)
    params = {"template": str(workspace.TEMPLATE), "pipelines": args.pipelines}
    many = run_probe("many_pipelines", params, env=env, log=workspace.RUNS / "many_pipelines.log")

    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "driver_peak_mib": round(own_peak_mib(), 1),
    }
    summary = report.summarize(
        args=vars(args),
        machine=machine,
        csv=csv,
        floor=floor,
        ours=ours,
        location=location,
        validate=validate,
        many=many,
    )
    print()
    print(report.table(summary))
    workspace.LAST_RUN.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"\nsaved to {workspace.LAST_RUN.relative_to(workspace.ROOT)}; logs in "
        f"{workspace.RUNS.relative_to(workspace.ROOT)}/"
    )
    return summary


def main(argv: list[str] | None = None) -> None:
    try:
        run(argv)
    except (ChildFailed, CountMismatch) as err:
        sys.exit(f"benchmark failed: {err}")


if __name__ == "__main__":
    main()
