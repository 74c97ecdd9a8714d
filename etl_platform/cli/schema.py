"""`etl-platform schema`: the JSON schema of pipeline files, for editors."""

import argparse
import json
import sys
from pathlib import Path


def add_commands(sub) -> None:
    """The ``schema`` command."""
    schema = sub.add_parser("schema", help="print (or --write) the JSON schema of pipeline defs.yaml files")
    schema.add_argument("--write", action="store_true", help="write it to etl_platform/schema/pipeline.schema.json")
    schema.set_defaults(func=_schema)


SCHEMA_PATH = Path(__file__).parent.parent / "schema" / "pipeline.schema.json"


COMPONENT_TYPE = "etl_platform.components.Pipeline"


def pipeline_file_schema() -> dict:
    """JSON schema of a whole pipeline ``defs.yaml`` (type + attributes), for editors."""
    from etl_platform.spec.pipeline import PipelineSpec

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
