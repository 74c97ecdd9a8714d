"""Daily partitions of a file source whose rows carry their date: each day's run reads the
files, keeps that day's rows and replaces exactly that day in the table."""

import dagster as dg

from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform_tests.conftest import failure_message, materializations, query

DAYS = ["2024-05-01", "2024-05-02", "2024-05-03"]
SPEC = {
    "source": {
        "files": "sales/*.csv",
        "columns": {"id": {"type": "bigint"}, "day": {"type": "date"}, "amount": {"type": "decimal(10,2)"}},
    },
    "rules": [{"name": "amount is negative", "check": "amount >= 0"}],
    "destination": {"table": "sales"},
    "partitions": {"by": "daily", "start": "2024-05-01", "column": "day"},
    "checks": {"max_rejected_fraction": 0.5},
}
# Two exports that overlap: the first has May 1 and 2, the second May 2 and 3. Line numbers
# count the header as line 1.
FIRST = "id,day,amount\n1,2024-05-01,10.5\n2,2024-05-01,11\n3,2024-05-02,-4\n4,2024-05-02,12\n5,,13\n"
SECOND = "id,day,amount\n6,2024-05-02,14\n7,2024-05-03,15\n8,2024-05-03,16\n9,2024-05-03,17\n"
ACCEPTED = {"2024-05-01": [1, 2], "2024-05-02": [4, 6], "2024-05-03": [7, 8, 9]}
ROWS_IN_FILES = 9  # every run reads both files whole


def defs() -> dg.Definitions:
    spec = PipelineSpec.model_validate(SPEC)
    ctx = PipelineContext(name="shop_files", names=table_names(spec, "shop_files"), defined_at={})
    return dg.Definitions.merge(
        build_pipeline_defs(spec, ctx), dg.Definitions(resources={"warehouse": WarehouseResource()})
    )


def run_day(day: str, instance) -> dg.ExecuteInProcessResult:
    return (
        defs()
        .resolve_job_def("shop_files_job")
        .execute_in_process(instance=instance, partition_key=day, raise_on_error=False)
    )


def ids_by_day(etl_home) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for row_id, day in query(etl_home, "SELECT id, day::VARCHAR FROM shop_files.sales ORDER BY ALL"):
        found.setdefault(day, []).append(row_id)
    return found


def rejected(etl_home, run_id: str) -> list[tuple]:
    return query(
        etl_home,
        "SELECT source_file, source_line, reasons FROM shop_files.sales_rejected WHERE run_id = ? ORDER BY ALL",
        [run_id],
    )


NO_DAY = ("sales/a.csv", 6, ["day is empty (no partition)"])
NEGATIVE = ("sales/a.csv", 4, ["amount is negative"])


def test_each_day_keeps_its_rows_of_every_file_and_counts_the_rest(landing, etl_home, instance):
    (landing / "sales").mkdir()
    (landing / "sales/a.csv").write_text(FIRST)
    (landing / "sales/b.csv").write_text(SECOND)

    for day in DAYS:
        result = run_day(day, instance)
        assert result.success, failure_message(result)
        meta = materializations(result)["shop_files/sales"]
        mine = ACCEPTED[day]
        # A bad row is the run's of its own day; a row with no day is in no partition, so
        # every run that reads it reports it.
        bad = [NO_DAY, NEGATIVE] if day == "2024-05-02" else [NO_DAY]
        assert rejected(etl_home, result.run_id) == sorted(bad)
        # Q holds over the day's rows (and the row of no day); the rows of other days are
        # counted apart, neither accepted nor rejected by this run.
        assert meta["files_read"] == 2 and meta["rows_read"] == len(mine) + len(bad)
        assert (meta["rows_accepted"], meta["rows_rejected"]) == (len(mine), len(bad))
        assert meta["rows_accepted"] + meta["rows_rejected"] == meta["rows_read"]
        assert meta["rows_outside_partition"] == ROWS_IN_FILES - meta["rows_read"]
        assert meta["rows_inserted"] == len(mine) and meta["rows_deleted"] == 0
        assert ids_by_day(etl_home).get(day) == mine
    assert ids_by_day(etl_home) == ACCEPTED

    # A corrected second export (May 2's row changed, one more for May 3): rerunning May 3
    # replaces exactly May 3; May 2 keeps what its own run loaded until it is rerun.
    (landing / "sales/b.csv").write_text(SECOND.replace("6,2024-05-02,14", "6,2024-05-02,99") + "10,2024-05-03,18\n")
    again = run_day("2024-05-03", instance)
    assert again.success, failure_message(again)
    meta = materializations(again)["shop_files/sales"]
    assert (meta["rows_deleted"], meta["rows_inserted"], meta["rows_read"], meta["rows_rejected"]) == (3, 4, 5, 1)
    assert meta["rows_outside_partition"] == ROWS_IN_FILES + 1 - 5
    assert ids_by_day(etl_home) == {**ACCEPTED, "2024-05-03": [7, 8, 9, 10]}  # NODUP, other days untouched
    assert query(etl_home, "SELECT amount::VARCHAR FROM shop_files.sales WHERE id = 6") == [("14.00",)]
    total = query(etl_home, "SELECT count(*), count(DISTINCT id) FROM shop_files.sales")
    assert total == [(8, 8)]
    # The negative amount of May 2 was recorded once, by May 2's run, not by every day's.
    assert query(etl_home, "SELECT count(*) FROM shop_files.sales_rejected WHERE 'amount is negative' IN reasons") == [
        (1,)
    ]
