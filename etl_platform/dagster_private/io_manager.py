"""Dagster's default IO manager, built the first time a step stores or loads a value.

Works around: a pipeline's steps pass nothing between them as Python values (every table lives
in the warehouse), yet each step initializes the job's IO manager. Dagster 1.13.27's default
(``default_job_io_manager_with_fs_io_manager_schema``, not public) builds a filesystem path
object whose first use imports fsspec and scans installed entry points: tens of milliseconds
per step, a tenth of a small incremental run. Deferred, a step that stores no value never pays
it, and a Python asset that returns one is stored exactly as before. With
``ETL_DAGSTER_SPEEDUPS=0`` the location keeps Dagster's default (``io_manager_resources``).
"""

import dagster as dg
from dagster._core.definitions.job_definition import default_job_io_manager_with_fs_io_manager_schema as dagsters


class _Deferred(dg.IOManager):
    def __init__(self, init_context: dg.InitResourceContext):
        self._init_context = init_context
        self._manager: dg.IOManager | None = None

    def _built(self) -> dg.IOManager:
        if self._manager is None:
            self._manager = dagsters.resource_fn(self._init_context)
        return self._manager

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        return self._built().handle_output(context, obj)

    def load_input(self, context: dg.InputContext):
        return self._built().load_input(context)


@dg.io_manager(config_schema=dagsters.config_schema, description=dagsters.description)
def deferred_io_manager(init_context: dg.InitResourceContext) -> dg.IOManager:
    return _Deferred(init_context)


def io_manager_resources() -> dict:
    """The ``io_manager`` resource to bind: the deferred one, or none (Dagster's default)."""
    from etl_platform.dagster_private import speedups_enabled

    return {"io_manager": deferred_io_manager} if speedups_enabled() else {}
