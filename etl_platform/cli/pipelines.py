"""`etl-platform pipelines`: load every pipeline as Dagster does and report the first error."""

import argparse
import sys


def add_commands(sub) -> None:
    """The ``pipelines`` command group."""
    pipelines = sub.add_parser("pipelines", help="pipelines").add_subparsers(dest="pipelines_command", required=True)
    pipelines.add_parser("validate", help="load every pipeline and report spec errors").set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    """Load the code location the way Dagster does, with each file pipeline's mapping compared
    with its latest files too; print the first error with its file and line."""
    import os

    import dagster as dg

    os.environ["ETL_VALIDATE_FILES"] = "1"

    from etl_platform.definitions import defs

    try:
        loaded = defs()
        graph = loaded.resolve_asset_graph()
    except dg.DagsterError as err:
        print(str(err), file=sys.stderr)
        return 1
    print(f"ok: {len(graph.get_all_asset_keys())} assets, {len(list(loaded.jobs or []))} jobs")
    return 0
