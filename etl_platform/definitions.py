"""The code location: every definition under ``defs/``, plus the policies that apply to all."""

import gc
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster._core.definitions.asset_selection import KeysAssetSelection
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.job_definition import default_job_io_manager_with_fs_io_manager_schema
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.definitions.utils import DEFAULT_IO_MANAGER_KEY
from dagster._core.execution.build_resources import wrap_resources_for_execution
from dagster_shared.record import replace

from etl_platform.factory import DEFINED_AT
from etl_platform.spec_errors import SpecError
from etl_platform.yaml_source import libyaml_component_files


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


def build_tree(tree: dg.ComponentTree) -> dg.Definitions:
    """Every definition in a component tree, built by Dagster.

    Unlike ``dg.load_from_defs_folder`` this leaves out the catalogue of every installed
    component library (used by the UI's scaffolding), whose imports (boto3 and friends)
    cost seconds in every process that loads the code location: webserver, daemon, each run.
    """
    with libyaml_component_files():
        root = tree.find_root_decl()
    # Dagster finds the declaration of each component it loads by listing the whole tree
    # again (a cost that grows with the square of the pipeline count); given them all at
    # once, it looks each up.
    for loc, declaration in root.iterate_loc_component_decl_pairs():
        tree.state_tracker.set_cache_data(loc, component_decl=declaration)
    children = [tree.build_defs(child.loc) for child in root.iterate_child_component_decls()]
    return dg.Definitions.merge(*children, dg.Definitions(component_tree=tree))


def load_location(tree: dg.ComponentTree) -> dg.Definitions:
    """The code location held by a component tree: its definitions, checked, with the
    executor of every job, and its asset jobs resolved (see ``resolve_asset_jobs``)."""
    with _garbage_collector_paused():
        loaded = build_tree(tree)
        check_references(loaded)
        return resolve_asset_jobs(dg.Definitions.merge(loaded, dg.Definitions(executor=chosen_executor())))


@dg.definitions
def defs() -> dg.Definitions:
    return load_location(dg.ComponentTree.for_project(Path(__file__).parent))


@contextmanager
def _garbage_collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while the location loads, and what the load
    built frozen (``gc.freeze``) when it ends.

    Loading creates over a million objects at 500 pipelines, nearly all of which live as long
    as the process (parsed YAML with its source positions, specs, op and asset definitions,
    jobs). Each automatic collection of the older generations would walk them all again:
    about a tenth of the load time while it runs, and afterwards a pause of about 0.75 s at
    every full collection, in every process that serves the location (code server, daemon,
    run workers). Frozen, later collections skip them. The price: cyclic garbage the load
    left behind (about 14 MB at 500 pipelines, a fraction of a MB for the demo) is never
    reclaimed; garbage without cycles is freed as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


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


def resolve_asset_jobs(defs: dg.Definitions) -> dg.Definitions:
    """``defs`` with each asset job that names its assets resolved against only the definitions
    it touches: those that produce its assets, those they read, and the checks on its assets.

    Dagster resolves an asset job against the whole asset graph of the code location, and
    subsetting that graph visits every asset definition once per job. With two jobs per
    pipeline the cost grows with the square of the number of pipelines: at 500 pipelines it
    was half of the time the location took to load. Resolved here, a job costs what its own
    pipeline costs. The job is the one Dagster would build (same assets, checks, resources,
    executor and loggers; another pipeline's table it reads is the same unexecutable input),
    and a job that cannot be resolved fails with Dagster's own error. Jobs that select assets
    any other way (groups, strings, upstream of ...) are left to Dagster, as are all jobs when
    the location holds definitions that only Dagster shapes: bare asset specs (folded into
    shared definitions), source assets, cacheable assets.
    """
    index = _AssetIndex.of(defs)
    if index is None:
        return defs
    # The assets are not bound to the resources (a copy of every definition, as the repository
    # makes its own anyway); the job gets what binding would have added to them: the
    # location's resources over Dagster's default IO manager.
    resources = wrap_resources_for_execution(
        {DEFAULT_IO_MANAGER_KEY: default_job_io_manager_with_fs_io_manager_schema, **(defs.resources or {})}
    )
    executor = _executor_of(defs)
    resolved: dict[str, dg.JobDefinition] = {}
    for family in _job_families(_jobs_naming_their_assets(defs), index):
        graph = AssetGraph.from_assets(family.definitions.values())
        for job in family.jobs:
            resolved[job.name] = _as_a_repository_resolves(job, graph, resources, executor, defs.loggers)
    return _with_resolved_jobs(defs, resolved)


def _as_a_repository_resolves(
    job: UnresolvedAssetJobDefinition,
    graph: AssetGraph,
    resources: dict,
    executor: dg.ExecutorDefinition | None,
    loggers: dict | None,
) -> dg.JobDefinition:
    """``job`` resolved against ``graph`` the way a repository resolves its asset jobs (with the
    location's resources, executor and loggers), without building a repository around it. The
    repository that takes the job in checks that its resources are all there."""
    try:
        resolved = job.resolve(asset_graph=graph, default_executor_def=executor, resource_defs=resources)
    except Exception as error:
        raise dg.DagsterInvalidDefinitionError(f"Failed to resolve asset job {job.name}") from error
    if executor and not resolved.has_specified_executor:
        resolved = resolved.with_executor_def(executor)
    if loggers and not resolved.has_specified_loggers:
        resolved = resolved.with_logger_defs(loggers)
    return resolved


def _executor_of(defs: dg.Definitions) -> dg.ExecutorDefinition | None:
    """The location's executor as a repository holds it (a bare executor is wrapped)."""
    if defs.executor is None or isinstance(defs.executor, dg.ExecutorDefinition):
        return defs.executor
    return dg.ExecutorDefinition.hardcoded_executor(defs.executor)


class _AssetIndex:
    """Which definition produces each asset key, and which definitions check each asset."""

    def __init__(self):
        self.producers: dict[dg.AssetKey, dg.AssetsDefinition] = {}
        self.checkers: defaultdict[dg.AssetKey, dict[int, dg.AssetsDefinition]] = defaultdict(dict)

    @classmethod
    def of(cls, defs: dg.Definitions) -> "_AssetIndex | None":
        index = cls()
        for asset in defs.assets or []:
            if not isinstance(asset, dg.AssetsDefinition):
                return None
            index.producers.update((key, asset) for key in asset.keys)
            index._add_checks(asset)
        for checks in defs.asset_checks or []:
            index._add_checks(checks)
        return index

    def _add_checks(self, definition: dg.AssetsDefinition) -> None:
        for check_key in definition.check_keys:
            self.checkers[check_key.asset_key][id(definition)] = definition


class _JobFamily:
    """Jobs that select assets of a common definition, resolved together, and the definitions they touch."""

    def __init__(self):
        self.jobs: list[UnresolvedAssetJobDefinition] = []
        self.selected: dict[int, dg.AssetsDefinition] = {}
        self.definitions: dict[int, dg.AssetsDefinition] = {}

    def absorb(self, other: "_JobFamily") -> None:
        self.jobs += other.jobs
        self.selected |= other.selected
        self.definitions |= other.definitions


def _jobs_naming_their_assets(defs: dg.Definitions) -> list[UnresolvedAssetJobDefinition]:
    """The asset jobs of ``defs`` selected by asset key, one per name, that can be resolved in advance.

    A job whose name has two different selections, or that a partitioned schedule still has
    to resolve, is left to Dagster, which reports or resolves it.
    """
    found: dict[str, UnresolvedAssetJobDefinition] = {}
    conflicting: set[str] = set()
    jobs = [*(defs.jobs or []), *(s.job for s in defs.schedules or [] if _targets_job(s))]
    jobs += [job for sensor in defs.sensors or [] if sensor.has_jobs for job in sensor.jobs]
    for job in jobs:
        if isinstance(job, UnresolvedAssetJobDefinition) and isinstance(job.selection, KeysAssetSelection):
            if found.setdefault(job.name, job).selection != job.selection:
                conflicting.add(job.name)
    for schedule in defs.schedules or []:
        if not isinstance(schedule, dg.ScheduleDefinition):
            conflicting.add(schedule.job.name)
    return [job for name, job in found.items() if name not in conflicting]


def _targets_job(schedule) -> bool:
    return isinstance(schedule, dg.ScheduleDefinition) and schedule.target.has_job_def


def _job_families(jobs: Iterable[UnresolvedAssetJobDefinition], index: _AssetIndex) -> list[_JobFamily]:
    """Group jobs that select assets of the same definition, so each group is resolved in one pass."""
    family_of: dict[int, _JobFamily] = {}
    families: dict[int, _JobFamily] = {}
    for job in jobs:
        keys = job.selection.selected_keys
        if any(key not in index.producers for key in keys):
            continue  # Dagster names the unknown key when it resolves the job
        selected = {id(index.producers[key]): index.producers[key] for key in keys}
        for key in keys:
            selected |= index.checkers[key]
        family = _JobFamily()
        for found in {id(f): f for d in selected if (f := family_of.get(d))}.values():
            family.absorb(found)
            del families[id(found)]
        family.jobs.append(job)
        family.selected |= selected
        family.definitions |= selected
        for definition in selected.values():
            upstream = [index.producers[k] for k in definition.node_keys_by_input_name.values() if k in index.producers]
            family.definitions |= {id(d): d for d in upstream}
        family_of.update((d, family) for d in family.selected)
        families[id(family)] = family
    return list(families.values())


def _with_resolved_jobs(defs: dg.Definitions, resolved: dict[str, dg.JobDefinition]) -> dg.Definitions:
    """``defs`` with its jobs, and the jobs its schedules and sensors target, replaced by their resolved versions."""
    if not resolved:
        return defs

    def swap(job):
        return resolved.get(job.name, job) if isinstance(job, UnresolvedAssetJobDefinition) else job

    schedules = [
        s.with_updated_job(swap(s.job)) if _targets_job(s) and s.job.name in resolved else s for s in defs.schedules or []
    ]
    sensors = [
        s.with_updated_jobs([swap(job) for job in s.jobs]) if s.has_jobs and any(j.name in resolved for j in s.jobs) else s
        for s in defs.sensors or []
    ]
    return replace(defs, jobs=[swap(job) for job in defs.jobs or []], schedules=schedules, sensors=sensors)
