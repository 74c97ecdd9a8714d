"""Helpers for the data quality tests: the demo marketing pipeline, changed by a test."""

from pathlib import Path

import dagster as dg
import yaml

from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.errors import SpecLocator
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform.validation.expectations import resolve_expectations
from etl_platform_tests.conftest import PROJECT_ROOT

MARKETING = PROJECT_ROOT / "etl_platform" / "defs" / "pipelines" / "marketing_campaigns"


def marketing_attributes(**changes) -> dict:
    """The demo pipeline's attributes with some sections replaced, without its training
    (trained elsewhere; these tests are about the data)."""
    raw = yaml.safe_load((MARKETING / "defs.yaml").read_text())["attributes"]
    raw.pop("train", None)
    raw.update(changes)
    return raw


def marketing_defs(raw: dict) -> dg.Definitions:
    """The pipeline's slice, built as the component builds it, with the warehouse bound."""
    spec = PipelineSpec.model_validate(raw)
    names = table_names(spec, "marketing_campaigns")
    expectations = resolve_expectations(
        spec, SpecLocator(None, fallback=str(MARKETING / "defs.yaml")), MARKETING, names
    )
    ctx = PipelineContext(name="marketing_campaigns", names=names, defined_at={}, expectations=expectations)
    return dg.Definitions.merge(
        build_pipeline_defs(spec, ctx), dg.Definitions(resources={"warehouse": WarehouseResource()})
    )


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, tuple[bool, dict]]:
    """Each check's verdict and metadata (values unwrapped), by 'asset:check'."""
    found = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            e = event.event_specific_data
            found[f"{e.asset_key.to_user_string()}:{e.check_name}"] = (
                e.passed,
                {k: v.value for k, v in e.metadata.items()},
            )
    return found


def folder_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*.html"))
