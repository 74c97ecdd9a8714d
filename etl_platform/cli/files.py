"""`etl-platform files`: ask the file sensor to load files again."""

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Dagster is imported when used: the command line starts without it
    pass

from etl_platform.automation.file_retries import request_retry
from etl_platform.settings import PROJECT_DEFS


def add_commands(sub, default_defs: str = str(PROJECT_DEFS)) -> None:
    """The ``files`` command group of ``etl-platform``."""
    files = sub.add_parser("files", help="files of file pipelines").add_subparsers(dest="files_command", required=True)
    retry = files.add_parser(
        "retry",
        help="run again files whose run failed (all of them, or --file NAME); the pipeline's file sensor takes them up "
        "at its next look",
    )
    retry.add_argument("pipeline")
    retry.add_argument(
        "--file",
        action="append",
        dest="files",
        metavar="NAME",
        help="a file's name as the sensor lists it (relative to the folder); repeat for more",
    )
    retry.add_argument("--defs", default=default_defs, help="defs folder of the pipelines (default: this project's)")
    retry.set_defaults(func=files_retry)


def files_retry(args: argparse.Namespace) -> int:
    problem = _watched_by_a_file_sensor(Path(args.defs), args.pipeline)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    home = _dagster_home()
    if not home.is_dir():
        print(f"no Dagster instance at {home}: set DAGSTER_HOME to the folder the daemon uses", file=sys.stderr)
        return 2
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        request_retry(instance, args.pipeline, args.files)
    what = ", ".join(args.files) if args.files else "every file that did not load"
    print(
        f"{args.pipeline}: retry asked for {what}; {args.pipeline}_file_sensor runs it at its next look "
        "(the check files_not_loaded on its source files shows what is still not loaded)"
    )
    return 0


def _watched_by_a_file_sensor(defs_root: Path, pipeline: str) -> str | None:
    """Why ``pipeline`` has no file sensor to ask, or None."""
    import yaml

    from etl_platform.spec.pipeline import PipelineSpec

    path = defs_root / "pipelines" / pipeline / "defs.yaml"
    if not path.exists():
        known = sorted(p.parent.name for p in (defs_root / "pipelines").glob("*/defs.yaml"))
        return f"unknown pipeline {pipeline!r}: no {path}; pipelines: {', '.join(known) or 'none'}"
    spec = PipelineSpec.model_validate((yaml.safe_load(path.read_text()) or {}).get("attributes") or {})
    if not (spec.triggers.on_new_files and spec.source.reads == "files"):
        return f"pipeline {pipeline!r} has no file sensor ({path}: triggers.on_new_files is not set on a file source)"
    return None


def _dagster_home() -> Path:
    from etl_platform import settings

    return Path(os.environ.get("DAGSTER_HOME") or settings.etl_home() / "dagster")
