"""The location's IO manager: Dagster's default, built only when a step stores or loads a value."""

from pathlib import Path

import dagster as dg

from etl_platform.dagster_private.io_manager import deferred_io_manager


def test_values_pass_between_python_assets_as_with_dagsters_default(instance):
    @dg.asset
    def numbers() -> list[int]:
        return [1, 2, 3]

    @dg.asset
    def total(numbers: list[int]) -> int:
        return sum(numbers)

    defs = dg.Definitions(assets=[numbers, total], resources={"io_manager": deferred_io_manager})
    result = dg.materialize([numbers, total], instance=instance, resources={"io_manager": deferred_io_manager})
    assert result.success and result.output_for_node("total") == 6
    # stored where Dagster's default stores it: pickles under the instance's storage folder
    assert (Path(instance.storage_directory()) / "numbers").is_file()
    assert defs.resolve_job_def("__ASSET_JOB").execute_in_process(instance=instance).output_for_node("total") == 6


def test_a_step_that_stores_no_value_never_builds_the_filesystem_manager(instance):
    manager = deferred_io_manager.resource_fn(dg.build_init_resource_context(config={}, instance=instance))
    assert manager._manager is None  # built lazily: nothing imported, no path made

    @dg.asset
    def table() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"rows": 1})

    result = dg.materialize(
        [table], instance=instance, resources={"io_manager": dg.IOManagerDefinition.hardcoded_io_manager(manager)}
    )
    assert result.success
    assert manager._manager is None
