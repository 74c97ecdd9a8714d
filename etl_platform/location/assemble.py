"""The code location assembled from a component tree: checked references, resolved jobs."""

import dagster as dg

from etl_platform.dagster_private.component_tree import build_tree
from etl_platform.dagster_private.gc_freeze import garbage_collector_paused
from etl_platform.dagster_private.job_resolution import resolve_asset_jobs
from etl_platform.factory.pipeline import DEFINED_AT
from etl_platform.location.executor import chosen_executor
from etl_platform.spec.errors import SpecError


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


def load_location(tree: dg.ComponentTree) -> dg.Definitions:
    """The code location held by a component tree: its definitions, checked, with the
    executor of every job, and its asset jobs resolved (see ``dagster_private``)."""
    with garbage_collector_paused():
        loaded = build_tree(tree)
        check_references(loaded)
        return resolve_asset_jobs(dg.Definitions.merge(loaded, dg.Definitions(executor=chosen_executor())))
