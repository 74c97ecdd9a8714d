"""What one child process measures. Each probe imports what it needs inside the function,
so its timings and memory include exactly that and nothing loaded for another probe.

Every probe returns a JSON-able dict; ``seconds`` is always the timed part only.
"""

import shutil
import time
from pathlib import Path

PIPELINE = "marketing_campaigns"
JOB = f"{PIPELINE}_job"
LOAD_KEYS = ([PIPELINE, "campaigns"], [PIPELINE, "campaigns_rejected"])  # the load multi-asset's two outputs
LOAD_METADATA = ("duration_seconds", "rows_read", "rows_accepted", "rows_rejected")

# Binds the resource key `warehouse` in the sandbox, as etl_platform/defs/resources.py does in the project.
SANDBOX_RESOURCES = "from etl_platform.defs.resources import resources  # noqa: F401\n"


def generate(folder: str, rows: int, name: str) -> dict:
    """Write the campaign CSV with the project's own deterministic generator."""
    from etl_platform.demo import data as demo

    started = time.perf_counter()
    [path] = demo.write_campaigns(Path(folder), rows, files=1, name=name)
    return {"path": str(path), "bytes": path.stat().st_size, "seconds": time.perf_counter() - started}


def plain_duckdb(csv: str, database: str) -> dict:
    """The floor: one CREATE TABLE AS SELECT * FROM read_csv(...) into a fresh database file."""
    import duckdb

    con = duckdb.connect(database)
    quoted = "'" + csv.replace("'", "''") + "'"
    started = time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv({quoted})")
    seconds = time.perf_counter() - started
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    threads, memory_limit = con.execute("SELECT current_setting('threads'), current_setting('memory_limit')").fetchone()
    closing = time.perf_counter()
    con.close()
    return {
        "seconds": seconds,
        "close_seconds": time.perf_counter() - closing,
        "rows": rows,
        "duckdb_version": duckdb.__version__,
        "threads": threads,
        "memory_limit": memory_limit,
    }


def pipeline() -> dict:
    """Materialize the marketing pipeline's load step through Dagster, as a user's run would.

    The warehouse and landing folder come from ETL_HOME. Only execute_in_process is timed;
    loading the definitions and creating the (ephemeral) instance are reported separately.
    """
    import dagster as dg

    from etl_platform.definitions import defs

    started = time.perf_counter()
    definitions = defs()
    load_keys = {dg.AssetKey(key) for key in LOAD_KEYS}
    # The load step with its own checks (rejected share, schema drift, readable files); the
    # pipeline's Great Expectations suite is a step of its own, after the load, left out.
    own_checks = definitions.resolve_assets_def(dg.AssetKey(LOAD_KEYS[0])).check_keys
    job = definitions.get_job_def(JOB).get_subset(asset_selection=load_keys, asset_check_selection=set(own_checks))
    loaded = time.perf_counter()
    instance = dg.DagsterInstance.ephemeral()  # a run worker has its instance before the run starts
    ready = time.perf_counter()
    result = job.execute_in_process(instance=instance)
    seconds = time.perf_counter() - ready
    materialized = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        materialized[materialization.asset_key.to_user_string()] = {
            k: v.value for k, v in materialization.metadata.items()
        }
    expected = {dg.AssetKey(key).to_user_string() for key in LOAD_KEYS}
    if set(materialized) != expected:
        raise SystemExit(f"expected materializations of {sorted(expected)}, got {sorted(materialized)}")
    metadata = materialized[dg.AssetKey(LOAD_KEYS[0]).to_user_string()]
    return {
        "seconds": seconds,
        "definitions_seconds": loaded - started,
        "instance_seconds": ready - loaded,
        **{name: metadata[name] for name in LOAD_METADATA},
        "dagster_version": dg.__version__,
    }


def code_location() -> dict:
    """Load the project's code location as `dagster` does, with Dagster's own import timed apart."""
    started = time.perf_counter()
    import dagster

    imported = time.perf_counter()
    from etl_platform.definitions import defs

    definitions = defs()
    graph = definitions.resolve_asset_graph()
    done = time.perf_counter()
    jobs = definitions.resolve_all_job_defs()
    return {
        "import_dagster_seconds": imported - started,
        "seconds": done - imported,
        "jobs_seconds": time.perf_counter() - done,
        "assets": len(graph.get_all_asset_keys()),
        "jobs": len(jobs),
        "dagster_version": dagster.__version__,
    }


def many_pipelines(template: str, pipelines: int) -> dict:
    """Load ``pipelines`` copies of one pipeline the way the code location loads its own
    defs folder (``etl_platform.location.assemble.load_location`` over Dagster's component tree).

    The copies live in a throwaway defs folder (Dagster's test sandbox, in a temp dir);
    each is a copy of the template pipeline's folder (its defs.yaml unchanged) named p000, p001, ..., so its
    name, schema, asset keys, job and schedule are its own. Not timed: importing Dagster
    and writing the files. Timed: loading the location (building, checking and assembling
    every definition, which resolves the pipelines' jobs) and resolving the asset graph
    (``seconds``); then, apart, resolving every job Dagster has left (``jobs_seconds``), which
    Dagster does whenever it serves the code location (webserver, daemon, run workers, CLI validate).
    """
    from dagster.components.testing import create_defs_folder_sandbox

    from etl_platform.location.assemble import load_location

    names = [f"p{i:03d}" for i in range(pipelines)]
    with create_defs_folder_sandbox(project_name="bench_pipelines") as sandbox:
        for name in names:  # the template's whole folder: its defs.yaml and the suites it points at
            shutil.copytree(Path(template).parent, sandbox.defs_folder_path / "pipelines" / name)
        (sandbox.defs_folder_path / "resources.py").write_text(SANDBOX_RESOURCES)
        with sandbox.build_component_tree() as tree:
            started = time.perf_counter()
            defs = load_location(tree)
            graph = defs.resolve_asset_graph()
            built = time.perf_counter()
            jobs = [job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
            resolved = time.perf_counter()
            keys = graph.get_all_asset_keys()
    loaded = {key.path[0] for key in keys}
    if not set(names) <= loaded:
        raise SystemExit(f"only {len(set(names) & loaded)} of {pipelines} pipelines produced assets")
    return {
        "seconds": built - started,
        "jobs_seconds": resolved - built,
        "pipelines": pipelines,
        "assets": len(keys),
        "jobs": len(jobs),
    }


def warm_up(home: str, template: str) -> dict:
    """Run every probe once on 1,000 rows under ``home`` (which must be ETL_HOME), untimed.

    Fills the bytecode cache with everything the measurements import, and fails fast if
    anything is broken before the long measurements start.
    """
    landing = Path(home) / "landing" / "campaigns"
    csv = generate(str(landing), 1_000, "campaign_export")["path"]
    plain_duckdb(csv, str(Path(home) / "floor.duckdb"))
    pipeline()
    code_location()
    many_pipelines(template, 2)
    return {}


PROBES = {
    "warm_up": warm_up,
    "generate": generate,
    "plain_duckdb": plain_duckdb,
    "pipeline": pipeline,
    "code_location": code_location,
    "many_pipelines": many_pipelines,
}
