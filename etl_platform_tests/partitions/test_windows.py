"""What a partition asks its source for: the SQL filter and the REST parameters of its window."""

from datetime import datetime
from zoneinfo import ZoneInfo

from etl_platform.connectors.registry import build
from etl_platform.destinations.warehouse.tables import Slice
from etl_platform.partitions.runs import spec_for_run
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps.partition_reads import source_window

BERLIN = ZoneInfo("Europe/Berlin")
MAY_1 = Slice(
    "sold_at", "2024-05-01", start=datetime(2024, 5, 1, tzinfo=BERLIN), end=datetime(2024, 5, 2, tzinfo=BERLIN)
)


def test_a_sql_source_filters_the_mapped_column_on_the_local_window():
    spec = PipelineSpec.model_validate(
        {
            "source": {
                "connection": "db",
                "table": "sales",
                "columns": {"sold_at": {"from": "Sold At", "type": "timestamp"}},
            },
            "destination": {"table": "sales"},
            "partitions": {"by": "daily", "start": "2024-01-01", "column": "sold_at", "timezone": "Europe/Berlin"},
        }
    )
    assert source_window(spec, MAY_1) == ("Sold At", "2024-05-01", "2024-05-02")
    mysql = build("db", "mysql", {"database": "shop"})
    assert mysql.select(spec.source, window=source_window(spec, MAY_1)) == (
        "SELECT * FROM `sales` WHERE `Sold At` >= '2024-05-01' AND `Sold At` < '2024-05-02'"
    )
    assert source_window(spec, None) is None  # an unpartitioned load reads everything
    # The window's rows are compared on local wall-clock time, or on instants for a zoned column.
    assert MAY_1.where("TIMESTAMP") == (
        "\"sold_at\" >= CAST('2024-05-01 00:00:00' AS TIMESTAMP) AND \"sold_at\" < CAST('2024-05-02 00:00:00' AS "
        "TIMESTAMP)"
    )
    assert "CAST('2024-05-01 00:00:00+02:00' AS TIMESTAMPTZ)" in MAY_1.where("TIMESTAMP WITH TIME ZONE")


def test_a_rest_source_gets_the_window_as_parameters():
    spec = PipelineSpec.model_validate(
        {
            "source": {"connection": "api", "endpoint": {"path": "orders", "params": {"status": "paid"}}},
            "destination": {"table": "orders"},
            "partitions": {
                "by": "daily",
                "start": "2024-01-01",
                "column": "created",
                "start_param": "from",
                "end_param": "to",
            },
        }
    )
    params = spec_for_run(spec, MAY_1).source.endpoint["params"]
    assert params == {"status": "paid", "from": "2024-05-01T00:00:00+02:00", "to": "2024-05-02T00:00:00+02:00"}
    formatted = spec.model_copy(update={"partitions": spec.partitions.model_copy(update={"param_format": "%Y%m%d"})})
    assert spec_for_run(formatted, MAY_1).source.endpoint["params"]["to"] == "20240502"
    assert spec_for_run(spec, MAY_1).rules[-1].not_null == ["sold_at"]  # rows in no partition are rejected
