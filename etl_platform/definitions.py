"""The code location: every definition under ``defs/``, plus the policies that apply to all."""

import os
import warnings
from pathlib import Path

import dagster as dg

from etl_platform.dagster_private.component_tree import build_tree
from etl_platform.dagster_private.gc_freeze import garbage_collector_paused
from etl_platform.dagster_private.job_resolution import resolve_asset_jobs
from etl_platform.factory import DEFINED_AT
from etl_platform.spec_errors import SpecError


def check_references(defs: dg.Definitions) -> None:
    """A SQL transform may read another pipeline's table; that table must exist somewhere."""
    produced = {
        key
        for asset in defs.assets or []
        for key in (asset.keys if isinstance(asset, dg.AssetsDefinition) else [asset.key])
    }
    for asset in defs.assets or []:
        if not isinstance(asset, dg.AssetsDefinition):
            continue
        for key in asset.keys:
            defined_at = asset.specs_by_key[key].metadata.get(DEFINED_AT)
            if not defined_at:
                continue
            for dep in asset.asset_deps[key]:
                if dep not in produced:
                    raise SpecError(
                        f"{defined_at} - the SQL refers to table '{'.'.join(dep.path)}', which no pipeline produces"
                    )


# Dagster marks parts of the component system beta/preview; the warnings say nothing a
# pipeline author can act on and drown the output of `dg` and `dagster` commands.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def load_location(tree: dg.ComponentTree) -> dg.Definitions:
    """The code location held by a component tree: its definitions, checked, with the
    executor of every job, and its asset jobs resolved (see ``dagster_private``)."""
    with garbage_collector_paused():
        loaded = build_tree(tree)
        check_references(loaded)
        return resolve_asset_jobs(dg.Definitions.merge(loaded, dg.Definitions(executor=chosen_executor())))


@dg.definitions
def defs() -> dg.Definitions:
    return load_location(dg.ComponentTree.for_project(Path(__file__).parent))


def chosen_executor() -> dg.ExecutorDefinition:
    """The executor of every job, from ``ETL_EXECUTOR``: ``in_process`` (default) or ``celery``.

    In-process by default: the multiprocess executor re-imports the code location for every
    step, which costs seconds per run. ``celery`` spreads one run's steps over Celery workers
    (deploy/README.md); the broker and result backend URLs are read from
    ``ETL_CELERY_BROKER_URL`` / ``ETL_CELERY_BACKEND_URL`` when a run starts, so they (and
    any password in them) never enter the definitions.
    """
    choice = os.environ.get("ETL_EXECUTOR", "in_process")
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "celery":
        from dagster_celery import celery_executor

        backend = "ETL_CELERY_BACKEND_URL" if os.environ.get("ETL_CELERY_BACKEND_URL") else "ETL_CELERY_BROKER_URL"
        return celery_executor.configured(
            {"broker": {"env": "ETL_CELERY_BROKER_URL"}, "backend": {"env": backend}}, name="celery"
        )
    raise ValueError(f"ETL_EXECUTOR={choice!r}: expected 'in_process' or 'celery'")
