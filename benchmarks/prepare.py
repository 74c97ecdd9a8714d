"""Untimed preparation: the campaign CSV, and a warm-up that fills the bytecode cache."""

import shutil

from benchmarks import workspace
from benchmarks.processes import run_command, run_probe


def prepare_csv(rows: int, env: dict[str, str]) -> dict:
    """The campaign CSV in the benchmark's landing folder, generated only when missing or of another size."""
    generated, seconds = False, None
    if not workspace.csv_is_current(rows):
        print(f"generating {rows:,} campaign rows ...", flush=True)
        workspace.forget_csv()
        params = {"folder": str(workspace.CAMPAIGNS), "rows": rows, "name": workspace.CSV_NAME}
        seconds = run_probe("generate", params, env=env, log=workspace.RUNS / "generate.log").result["seconds"]
        workspace.remember_csv(rows)
        generated = True
    return {
        "path": str(workspace.CSV),
        "rows": rows,
        "bytes": workspace.CSV.stat().st_size,
        "generated": generated,
        "generate_seconds": seconds,
    }


def warm_up() -> None:
    """Run every probe and the CLI once on a tiny data set in a separate ETL_HOME, untimed.

    Afterwards every module the measurements import is compiled in the bytecode cache, so
    no measurement pays for compiling Python source (a one-off cost, not a per-run one).
    """
    print("warming up (untimed) ...", flush=True)
    shutil.rmtree(workspace.WARMUP_HOME, ignore_errors=True)
    env = workspace.child_env(workspace.WARMUP_HOME)
    params = {"home": str(workspace.WARMUP_HOME), "template": str(workspace.TEMPLATE)}
    run_probe("warm_up", params, env=env, log=workspace.RUNS / "warm_up.log")
    run_command(workspace.VALIDATE_ARGV, env=env, log=workspace.RUNS / "warm_up_validate.log")
    shutil.rmtree(workspace.WARMUP_HOME)
