"""What the commands share: the project's pipelines as their files declare them, the warehouse,
and where each pipeline keeps its state."""

from pathlib import Path
from typing import TYPE_CHECKING

from etl_platform import settings

if TYPE_CHECKING:
    from etl_platform.spec.pipeline import PipelineSpec


def warehouse():
    import duckdb

    path = settings.warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path))


def pipeline_specs(defs_root: Path) -> dict[str, "PipelineSpec"]:
    """Every pipeline of a defs folder by name, read from its defs.yaml."""
    import yaml

    from etl_platform.spec.pipeline import PipelineSpec

    specs = {}
    for path in sorted((defs_root / "pipelines").glob("*/defs.yaml")):
        attributes = (yaml.safe_load(path.read_text()) or {}).get("attributes") or {}
        specs[path.parent.name] = PipelineSpec.model_validate(attributes)
    return specs


def destination_of(pipeline: str, spec, defs_root: Path):
    """Where a pipeline's cursor lives: its destination (the warehouse unless it says otherwise)."""
    from etl_platform.connectors.connections import declared_options
    from etl_platform.connectors.registry import build
    from etl_platform.destinations.base import WAREHOUSE
    from etl_platform.destinations.registry import destination_for
    from etl_platform.destinations.warehouse.destination import WarehouseTable
    from etl_platform.destinations.warehouse.tables import TableRef
    from etl_platform.spec.tables import table_names

    names = table_names(spec, pipeline)
    dest = spec.destination
    if dest.connection == WAREHOUSE:
        return WarehouseTable(TableRef(names.schema, names.table))
    kind, options = declared_options(defs_root)[dest.connection]
    return destination_for(
        kind,
        build(dest.connection, kind, options),
        names.schema,
        names.table,
        file_format=dest.format,
        partition_by=dest.partition_by,
    )
