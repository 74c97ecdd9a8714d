"""One partition per source file: a file is loaded, reprocessed and fails on its own."""

import dagster as dg

from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform_tests.conftest import materializations, query

HEADER = "order_id,ordered_on,amount\n"
SPEC = {
    "source": {
        "files": "orders/*.csv",
        "columns": {
            "order_id": {"type": "bigint"},
            "ordered_on": {"type": "date"},
            "amount": {"type": "decimal(10,2)"},
        },
        "on_bad_file": "fail",
    },
    "rules": [{"name": "amount is negative", "check": "amount >= 0"}],
    "destination": {"table": "orders"},
    "partitions": {"by": "file"},
}
FIRST, SECOND = "orders/2024-05-01.csv", "orders/2024-05-02.csv"


def orders_csv(first_id: int, count: int, bad_amount_at: int | None = None) -> str:
    return HEADER + "".join(
        f"{first_id + i},2024-05-01,{-1 if i == bad_amount_at else i + 0.5}\n" for i in range(count)
    )


def defs() -> dg.Definitions:
    spec = PipelineSpec.model_validate(SPEC)
    ctx = PipelineContext(name="orders", names=table_names(spec, "orders"), defined_at={})
    return dg.Definitions.merge(
        build_pipeline_defs(spec, ctx), dg.Definitions(resources={"warehouse": WarehouseResource()})
    )


def run_file(key: str, instance) -> dg.ExecuteInProcessResult:
    return (
        defs()
        .resolve_job_def("orders_job")
        .execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
    )


def rows_by_file(etl_home) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for order_id, source_file in query(etl_home, "SELECT order_id, _source_file FROM orders.orders ORDER BY ALL"):
        found.setdefault(source_file, []).append(order_id)
    return found


def test_each_file_is_a_partition_that_reprocesses_alone(landing, etl_home, instance):
    (landing / "orders").mkdir()
    (landing / FIRST).write_text(orders_csv(1, 5, bad_amount_at=2))
    (landing / SECOND).write_text(orders_csv(100, 3))
    assert defs().resolve_job_def("orders_job").partitions_def == dg.DynamicPartitionsDefinition(name="orders_files")
    instance.add_dynamic_partitions("orders_files", [FIRST, SECOND])  # what the file sensor does

    first = run_file(FIRST, instance)
    assert first.success
    meta = materializations(first)["orders/orders"]
    assert meta["files_read"] == 1 and meta["partition"] == FIRST  # only its own file was read
    assert (meta["rows_read"], meta["rows_accepted"], meta["rows_rejected"]) == (5, 4, 1)  # Q
    assert run_file(SECOND, instance).success
    assert rows_by_file(etl_home) == {FIRST: [1, 2, 4, 5], SECOND: [100, 101, 102]}

    # A corrected export of the first day replaces exactly that file's rows.
    (landing / FIRST).write_text(orders_csv(1, 6))
    again = run_file(FIRST, instance)
    assert again.success
    meta = materializations(again)["orders/orders"]
    assert (meta["rows_deleted"], meta["rows_inserted"]) == (4, 6)
    assert rows_by_file(etl_home) == {FIRST: [1, 2, 3, 4, 5, 6], SECOND: [100, 101, 102]}  # NODUP, other file untouched
    # The same bytes again (a plain rerun) are reloaded, not skipped as already seen.
    same = materializations(run_file(SECOND, instance))["orders/orders"]
    assert (same["rows_deleted"], same["rows_inserted"]) == (3, 3)
    assert rows_by_file(etl_home) == {FIRST: [1, 2, 3, 4, 5, 6], SECOND: [100, 101, 102]}
    rejected = query(etl_home, "SELECT source_file, source_line, reasons FROM orders.orders_rejected")
    assert rejected == [(FIRST, 4, ["amount is negative"])]  # from the first load, with its file and line


def test_a_bad_file_or_a_missing_one_keeps_the_partitions_rows(landing, etl_home, instance):
    (landing / "orders").mkdir()
    (landing / FIRST).write_text(orders_csv(1, 3))
    instance.add_dynamic_partitions("orders_files", [FIRST, "orders/gone.csv"])
    assert run_file(FIRST, instance).success

    (landing / FIRST).write_text("order_id,amount\n1,2.5\n")  # the date column went missing
    failed = run_file(FIRST, instance)
    assert not failed.success
    message = next(
        e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"
    ).event_specific_data.error.message
    assert FIRST in message and "ordered_on" in message and "nothing was loaded" in message
    assert rows_by_file(etl_home) == {FIRST: [1, 2, 3]}

    missing = run_file("orders/gone.csv", instance)
    assert not missing.success
    message = next(
        e for e in missing.all_events if e.event_type_value == "STEP_FAILURE"
    ).event_specific_data.error.message
    assert "orders/gone.csv" in message and "left as they were" in message
    assert rows_by_file(etl_home) == {FIRST: [1, 2, 3]}
