import dagster as dg

from etl_platform.resources.io_manager import deferred_io_manager
from etl_platform.resources.mlflow import MLflowResource
from etl_platform.resources.warehouse import WarehouseResource


@dg.definitions
def resources() -> dg.Definitions:
    """Every resource key, bound once."""
    return dg.Definitions(
        resources={"warehouse": WarehouseResource(), "mlflow": MLflowResource(), "io_manager": deferred_io_manager}
    )
