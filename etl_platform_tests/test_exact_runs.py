"""What a user sees in Dagster when a load is refused or every file is rejected."""

import dagster as dg

from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform_tests.conftest import check_results, failure_message, materializations, query

COLUMNS = {"id": {"type": "bigint"}, "name": {}}


def pipeline_defs(name: str, sync: dict) -> dg.Definitions:
    spec = PipelineSpec.model_validate(
        {
            "source": {"files": "in/*.csv", "columns": COLUMNS},
            "sync": sync,
            "destination": {"table": "t"},
            "retries": {"max_retries": 0},
        }
    )
    ctx = PipelineContext(name=name, names=table_names(spec, name), defined_at={})
    return dg.Definitions.merge(
        build_pipeline_defs(spec, ctx), dg.Definitions(resources={"warehouse": WarehouseResource()})
    )


def check_metadata(result: dg.ExecuteInProcessResult, check: str) -> dict:
    [evaluation] = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == check
    ]
    return {k: v.value for k, v in evaluation.metadata.items()}


def test_a_replace_run_whose_every_file_is_rejected_fails_keeps_the_table_and_fails_its_check(etl_home, instance):
    landing = etl_home / "landing" / "in"
    landing.mkdir()
    (landing / "good.csv").write_text("id,name\n1,a\n2,b\n")
    defs = pipeline_defs("p", {"mode": "replace"})
    assert defs.resolve_job_def("p_job").execute_in_process(instance=instance).success
    (landing / "good.csv").unlink()
    (landing / "empty.csv").write_bytes(b"")
    (landing / "report.csv").write_bytes(b"%PDF-1.7\n1 0 obj\n<< >>\nendobj\n")

    result = defs.resolve_job_def("p_job").execute_in_process(instance=instance, raise_on_error=False)

    assert not result.success
    assert "all 2 file(s) were rejected whole; p.t was left as it was" in failure_message(result)
    assert "permanent failure: not retried" in failure_message(result)
    assert query(etl_home, "SELECT id FROM p.t ORDER BY id") == [(1,), (2,)]
    assert check_results(result)["p/t:rejected_rows_within_limit"] is False
    assert check_metadata(result, "rejected_rows_within_limit")["reason"].startswith(
        "all 2 file(s) were rejected whole"
    )
    assert materializations(result)["p/t_rejected"]["rows_rejected_this_run"] == 0
    assert sorted(query(etl_home, "SELECT source_file, kind FROM p.t_rejected")) == [
        ("in/empty.csv", "file"),
        ("in/report.csv", "file"),
    ]


def test_an_append_run_whose_every_file_is_rejected_fails_its_share_check_not_on_zero_of_zero(etl_home, instance):
    landing = etl_home / "landing" / "in"
    landing.mkdir()
    (landing / "empty.csv").write_bytes(b"")
    defs = pipeline_defs("p", {"mode": "append"})

    result = defs.resolve_job_def("p_job").execute_in_process(instance=instance, raise_on_error=False)

    assert result.success
    assert check_results(result)["p/t:rejected_rows_within_limit"] is False
    assert check_metadata(result, "rejected_rows_within_limit")["reason"] == "all 1 file(s) were rejected whole"


def test_a_merge_run_shows_the_rows_it_superseded_and_accounts_for_every_row(etl_home, instance):
    landing = etl_home / "landing" / "in"
    landing.mkdir()
    (landing / "a.csv").write_text("id,name\n1,first\n1,second\n2,only\nx,bad\n")
    defs = pipeline_defs("p", {"mode": "merge", "primary_key": ["id"]})

    result = defs.resolve_job_def("p_job").execute_in_process(instance=instance)

    meta = materializations(result)["p/t"]
    assert (meta["rows_read"], meta["rows_written"], meta["rows_rejected"], meta["rows_superseded"]) == (4, 2, 1, 1)
    assert meta["rows_accounted_for"] == "4 read = 2 written + 1 rejected + 1 superseded"
    assert query(etl_home, "SELECT id, name FROM p.t ORDER BY id") == [(1, "second"), (2, "only")]
