"""``etl-platform``: demo data, the vault, pipeline validation, saved cursors, rejected rows,
file retries, connection discovery, MLflow's UI and the spec's JSON schema. One module per
command group; each adds its commands to the parser."""

import argparse
import sys

from etl_platform.cli import demo, discover, files, mlflow, pipelines, rejected, schema, state, vault


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etl-platform", description=__doc__.split(". One module")[0] + ".")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (demo, vault, pipelines, state, discover, rejected, files, mlflow, schema):
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
