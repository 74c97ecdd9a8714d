"""The destination a pipeline declares, by the kind of its connection."""



from etl_platform.destinations.base import Destination
from etl_platform.destinations.files.destination import FileTable
from etl_platform.destinations.postgres.destination import PostgresTable
from etl_platform.destinations.warehouse import tables as load
from etl_platform.destinations.warehouse.destination import WarehouseTable


def destination_for(connection_kind: str, connector, schema: str, table: str, *, file_format: str | None, partition_by) -> Destination:
    """The destination a pipeline declares; ``connector`` is None for the warehouse."""
    if connector is None:
        return WarehouseTable(load.TableRef(schema, table))
    if connection_kind == "postgres":
        return PostgresTable(connector, schema, table)
    return FileTable(connector, schema, table, file_format or "parquet", tuple(partition_by))

