"""The demo's daily-partitioned pipeline on the embedded default: a SQLite source file that
`etl-platform demo generate` writes, no servers."""

import sqlite3

from etl_platform_tests.conftest import load_definitions, materializations, query, scalar


def test_store_sales_loads_a_day_then_a_range_in_one_run(demo_landing, etl_home, instance):
    source = demo_landing / "pos" / "store_sales.sqlite"
    with sqlite3.connect(source) as db:
        per_day = dict(db.execute("SELECT substr(sold_at, 1, 10), count(*) FROM sales GROUP BY 1").fetchall())
    job = load_definitions().resolve_job_def("store_sales_job")

    day = job.execute_in_process(instance=instance, partition_key="2025-01-02", raise_on_error=False)
    assert day.success
    meta = materializations(day)["store_sales/sales"]
    assert meta["rows_read"] == meta["rows_inserted"] == per_day["2025-01-02"] and meta["rows_rejected"] == 0
    assert scalar(etl_home, "SELECT count(*) FROM store_sales.sales") == per_day["2025-01-02"]

    days = ["2025-01-01", "2025-01-02", "2025-01-03"]
    ranged = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )
    assert ranged.success
    meta = materializations(ranged)["store_sales/sales"]
    assert meta["rows_deleted"] == per_day["2025-01-02"] and meta["rows_inserted"] == sum(per_day[d] for d in days)
    loaded = dict(query(etl_home, "SELECT sold_at::DATE::VARCHAR, count(*) FROM store_sales.sales GROUP BY 1"))
    assert loaded == {d: per_day[d] for d in days}
    # The unpartitioned transform was rebuilt over every loaded day.
    assert scalar(etl_home, "SELECT sum(items) FROM store_sales.daily_store_revenue") == scalar(
        etl_home, "SELECT sum(quantity) FROM store_sales.sales"
    )
