"""A code location for the pool-slot test: two pipelines built by the platform's factory, so
both load steps are in the ``duckdb_warehouse`` pool, as every warehouse writer is.

``slow`` reads a REST endpoint at ETL_TEST_SLOW_API that the test holds open while it kills
the run; ``quick`` loads the CSV files ``quick/*.csv`` of the landing folder.
"""

import os

import dagster as dg

from etl_platform.connectors.connections import as_resource, resource_key
from etl_platform.connectors.registry import build
from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names


def _pipeline(name: str, spec: dict, connection_kind: str = "local") -> dg.Definitions:
    parsed = PipelineSpec.model_validate(spec)
    ctx = PipelineContext(name=name, names=table_names(parsed, name), defined_at={}, connection_kind=connection_kind)
    return build_pipeline_defs(parsed, ctx)


slow_api = build(
    "slow_api", "rest", {"base_url": os.environ.get("ETL_TEST_SLOW_API", "http://127.0.0.1:9"), "max_retries": 0}
)

defs = dg.Definitions.merge(
    _pipeline(
        "slow",
        {"source": {"connection": "slow_api", "endpoint": {"path": "records"}}, "destination": {"table": "records"}},
        connection_kind="rest",
    ),
    _pipeline(
        "quick",
        {"source": {"files": "quick/*.csv", "columns": {"id": {"type": "bigint"}}}, "destination": {"table": "rows"}},
    ),
    dg.Definitions(
        resources={"warehouse": WarehouseResource(), resource_key("slow_api"): as_resource(slow_api)},
        executor=dg.in_process_executor,  # the platform's default (etl_platform.definitions)
    ),
)
