"""``etl-platform``: demo data, pipeline validation, the spec's JSON schema."""

import argparse
import json
import sys
from pathlib import Path

from etl_platform import settings

SCHEMA_PATH = Path(__file__).parent / "schema" / "pipeline.schema.json"
COMPONENT_TYPE = "etl_platform.components.Pipeline"


def pipeline_file_schema() -> dict:
    """JSON schema of a whole pipeline ``defs.yaml`` (type + attributes), for editors."""
    from etl_platform.spec import PipelineSpec

    attributes = PipelineSpec.model_json_schema(by_alias=True)
    defs = attributes.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "etl_platform pipeline (defs.yaml)",
        "type": "object",
        "properties": {
            "type": {"const": COMPONENT_TYPE, "description": "Always the Pipeline component type."},
            "attributes": attributes,
        },
        "required": ["type", "attributes"],
        "additionalProperties": False,
        "$defs": defs,
    }


def _schema(args: argparse.Namespace) -> int:
    text = json.dumps(pipeline_file_schema(), indent=2, sort_keys=True) + "\n"
    if args.write:
        SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_PATH.write_text(text)
        print(f"wrote {SCHEMA_PATH}")
    else:
        sys.stdout.write(text)
    return 0


def _demo_generate(args: argparse.Namespace) -> int:
    from etl_platform import demo

    landing = Path(args.landing) if args.landing else settings.landing_dir()
    if args.if_missing and any((landing / "campaigns").glob("*.csv")):
        print(f"demo data already in {landing}")
        return 0
    written = demo.generate(landing, campaign_rows=args.rows, campaign_files=args.files)
    print(f"wrote {len(written)} demo files under {landing}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    """Load the code location the way Dagster does; print the first error with its file and line."""
    import dagster as dg

    from etl_platform.definitions import defs

    try:
        loaded = defs()
        graph = loaded.resolve_asset_graph()
    except dg.DagsterError as err:
        print(str(err), file=sys.stderr)
        return 1
    print(f"ok: {len(graph.get_all_asset_keys())} assets, {len(list(loaded.jobs or []))} jobs")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etl-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="demo data").add_subparsers(dest="demo_command", required=True)
    gen = demo.add_parser("generate", help="write the demo pipelines' files into the landing folder")
    gen.add_argument("--rows", type=int, default=30_000, help="campaign rows in all (default 30,000)")
    gen.add_argument("--files", type=int, default=3, help="campaign files to split them over")
    gen.add_argument("--landing", help="landing folder (default: ETL_LANDING_DIR or .etl_home/landing)")
    gen.add_argument("--if-missing", action="store_true", help="do nothing when demo files are already there")
    gen.set_defaults(func=_demo_generate)

    pipelines = sub.add_parser("pipelines", help="pipelines").add_subparsers(dest="pipelines_command", required=True)
    pipelines.add_parser("validate", help="load every pipeline and report spec errors").set_defaults(func=_validate)

    schema = sub.add_parser("schema", help="print (or --write) the JSON schema of pipeline defs.yaml files")
    schema.add_argument("--write", action="store_true", help="write it to etl_platform/schema/pipeline.schema.json")
    schema.set_defaults(func=_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
