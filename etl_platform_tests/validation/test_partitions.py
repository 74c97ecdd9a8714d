"""A bad partitions section fails when definitions load, naming the file, line and field; a
good one makes the load asset, job and schedule partitioned."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from etl_platform.spec.errors import SpecError, SpecLocator
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.validation.pipeline import check_pipeline
from etl_platform_tests.spec.test_spec_errors import VALID, load_error

DAILY = "  partitions: {by: daily, start: '2024-01-01', column: day}\n"


@pytest.mark.parametrize(
    ("partitions", "line", "field", "says"),
    [
        pytest.param(
            "  partitions: {by: daily, start: '2024-01-01', column: dya}\n",
            12,
            "attributes.partitions.column",
            "'dya' is not a target column; did you mean 'day'?",
            id="unknown column",
        ),
        pytest.param(
            "  partitions: {by: daily, start: '2024-01-01', column: spend}\n",
            12,
            "attributes.partitions.column",
            "time partitions need a date, timestamp or timestamptz column",
            id="not a date column",
        ),
        pytest.param(
            "  partitions: {by: hourly}\n",
            12,
            "attributes.partitions",
            "hourly partitions need start and column",
            id="time partitions without start",
        ),
        pytest.param(
            "  partitions: {by: daily, start: 'May 1st', column: day}\n",
            12,
            "attributes.partitions.start",
            "not an ISO date",
            id="bad start",
        ),
        pytest.param(
            DAILY + "  sync: {mode: merge, primary_key: [day]}\n",
            13,
            "attributes.sync.mode",
            "sync mode 'merge' does not apply",
            id="merge",
        ),
        pytest.param(
            "  partitions: {by: daily, start: '2024-01-01', column: day, start_param: from, end_param: to}\n",
            12,
            "attributes.partitions.start_param",
            "for REST sources",
            id="REST parameters on files",
        ),
        pytest.param(
            "  partitions: {by: file}\n  triggers: {cron: '0 6 * * *'}\n",
            13,
            "attributes.triggers.cron",
            "no file to run",
            id="cron on per-file partitions",
        ),
    ],
)
def test_a_bad_partitions_section_names_file_line_and_field(etl_home, partitions, line, field, says):
    message = load_error(VALID.replace("  transforms:\n", partitions + "  transforms:\n", 1))
    assert f"costs/defs.yaml:{line}" in message
    assert field in message
    assert says in message


def _spec(**changes) -> PipelineSpec:
    raw = {
        "source": {"connection": "shop_db", "table": "orders"},
        "destination": {"table": "orders"},
        "partitions": {"by": "file"},
    }
    return PipelineSpec.model_validate({**raw, **changes})


def test_partitions_the_source_or_destination_cannot_have_are_refused():
    locate = SpecLocator(None, "orders/defs.yaml")
    kinds = {"landing": "local", "shop_db": "postgres", "lake": "local"}
    with pytest.raises(
        SpecError, match=r"orders/defs.yaml - attributes.partitions.by: per-file partitions need a file source"
    ):
        check_pipeline(_spec(), "orders", locate, None, kinds)
    files = {"files": "o/*.csv", "columns": {"day": {"type": "date"}}}
    with pytest.raises(
        SpecError, match="attributes.destination.lineage_columns: per-file partitions find a file's rows"
    ):
        check_pipeline(
            _spec(source=files, destination={"table": "o", "lineage_columns": False}), "orders", locate, None, kinds
        )
    with pytest.raises(SpecError, match="attributes.partitions: destination 'lake' is a folder of files"):
        check_pipeline(
            _spec(source=files, destination={"table": "o", "connection": "lake"}), "orders", locate, None, kinds
        )
    rest_kinds = {**kinds, "api": "rest"}
    api = {"connection": "api", "endpoint": {"path": "orders"}}
    with pytest.raises(
        SpecError, match="a REST source is asked for one window at a time: set start_param and end_param"
    ):
        check_pipeline(
            _spec(source=api, partitions={"by": "daily", "start": "2024-01-01", "column": "day"}),
            "orders",
            locate,
            None,
            rest_kinds,
        )


def test_a_partitioned_pipeline_loads_with_a_schedule_for_the_latest_day(etl_home):
    from dagster.components.testing import create_defs_folder_sandbox

    from etl_platform_tests.spec.test_spec_errors import write_pipeline

    yaml_text = VALID.replace("  transforms:\n", DAILY + "  triggers: {cron: '30 1 * * *'}\n  transforms:\n", 1)
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, yaml_text)
        with sandbox.build_all_defs() as defs:
            job = defs.resolve_job_def("costs_job")
            schedule = defs.resolve_schedule_def("costs_schedule")
            repository = defs.get_repository_def()
    assert job.partitions_def == dg.DailyPartitionsDefinition(start_date="2024-01-01")
    assert schedule.cron_schedule == "30 1 * * *"

    def tick(at: datetime):
        context = dg.build_schedule_context(scheduled_execution_time=at, repository_def=repository)
        return schedule.evaluate_tick(context)

    assert [r.partition_key for r in tick(datetime(2024, 3, 5, 1, 30, tzinfo=UTC)).run_requests] == ["2024-03-04"]
    before_start = tick(datetime(2024, 1, 1, 1, 30, tzinfo=UTC))
    assert not before_start.run_requests and "no complete partition yet" in before_start.skip_message
