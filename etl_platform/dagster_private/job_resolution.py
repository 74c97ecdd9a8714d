"""Asset jobs resolved against only the assets they touch.

Works around: Dagster (1.13.27) resolves each asset job against the whole asset graph of the
code location, so with two jobs per pipeline loading grows with the square of the pipeline
count (half the load time at 500 pipelines). Uses ``UnresolvedAssetJobDefinition.resolve``,
``AssetGraph.from_assets``, ``KeysAssetSelection`` and the resource wrapping a repository
applies, none of them public. Upstream: no issue filed; Dagster's own repository building
does the same resolution, once per job over everything. With ``ETL_DAGSTER_SPEEDUPS=0`` jobs
are left to Dagster. The equivalence with Dagster's resolution is tested on generated
pipeline shapes (etl_platform_tests/location/test_definitions.py).
"""

from collections import defaultdict
from collections.abc import Iterable

import dagster as dg
from dagster._core.definitions.asset_selection import KeysAssetSelection
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.job_definition import default_job_io_manager_with_fs_io_manager_schema
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.definitions.utils import DEFAULT_IO_MANAGER_KEY
from dagster._core.execution.build_resources import wrap_resources_for_execution
from dagster_shared.record import replace

from etl_platform.dagster_private import speedups_enabled


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
    index = _AssetIndex.of(defs) if speedups_enabled() else None
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
        s.with_updated_job(swap(s.job)) if _targets_job(s) and s.job.name in resolved else s
        for s in defs.schedules or []
    ]
    sensors = [
        s.with_updated_jobs([swap(job) for job in s.jobs])
        if s.has_jobs and any(j.name in resolved for j in s.jobs)
        else s
        for s in defs.sensors or []
    ]
    return replace(defs, jobs=[swap(job) for job in defs.jobs or []], schedules=schedules, sensors=sensors)
