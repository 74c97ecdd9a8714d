import dagster as dg

from etl_platform.dagster_private.io_manager import io_manager_resources
from etl_platform.resources.mlflow import MLflowResource
from etl_platform.resources.warehouse import WarehouseResource


@dg.definitions
def resources() -> dg.Definitions:
    """Every resource key, bound once."""
    return dg.Definitions(
        resources={"warehouse": WarehouseResource(), "mlflow": MLflowResource(), **io_manager_resources()}
    )
