"""The real command lines, as a user runs them: dg, dagster, etl-platform."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import jsonschema
import yaml

from etl_platform.cli.schema import SCHEMA_PATH, pipeline_file_schema
from etl_platform.resources.warehouse import WAREHOUSE_POOL
from etl_platform_tests.conftest import PROJECT_ROOT, cli, materializations, query, run_job, scalar
from etl_platform_tests.spec.test_spec_errors import VALID

CAMPAIGN_ASSETS = "marketing_campaigns/campaigns,marketing_campaigns/campaigns_rejected"


def dagster_home(tmp_path: Path) -> Path:
    """An instance configured by the project's own dagster.yaml, as scripts/dev sets it up."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(PROJECT_ROOT / "dagster.yaml")
    return home


def test_dg_check_defs_and_dagster_validate_pass_on_the_project(demo_landing, etl_home):
    checked = cli("dg", "check", "defs")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    validated = cli("dagster", "definitions", "validate", "-m", "etl_platform.definitions")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "All code locations passed validation" in validated.stdout + validated.stderr


def test_dg_and_dagster_name_the_file_line_and_field_of_a_bad_spec(etl_home, tmp_path):
    project = tmp_path / "project"
    pipeline = project / "badproj" / "defs" / "pipelines" / "costs"
    pipeline.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "badproj"\nversion = "0"\n[tool.dg]\ndirectory_type = "project"\n'
        '[tool.dg.project]\nroot_module = "badproj"\n'
    )
    (project / "badproj" / "__init__.py").write_text("")
    (project / "badproj" / "definitions.py").write_text(
        "from pathlib import Path\nimport dagster as dg\n\n@dg.definitions\ndef defs():\n"
        "    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)\n"
    )
    (project / "badproj" / "defs" / "resources.py").write_text("from etl_platform.defs.resources import resources\n")
    (pipeline / "defs.yaml").write_text(VALID.replace("FROM costs", "FROM cost"))
    env = {"PYTHONPATH": str(project)}
    for command in (["dg", "check", "defs"], ["dagster", "definitions", "validate", "-m", "badproj.definitions"]):
        result = cli(*command, env=env, cwd=project)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "costs/defs.yaml:14 - attributes.transforms.0.sql: refers to table 'cost'" in output, output


def test_dagster_asset_materialize_records_the_run_in_the_instance(demo_landing, etl_home, tmp_path):
    home = dagster_home(tmp_path)
    result = cli(
        "dagster",
        "asset",
        "materialize",
        "-m",
        "etl_platform.definitions",
        "--select",
        CAMPAIGN_ASSETS,
        env={"DAGSTER_HOME": str(home)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        event = instance.get_latest_materialization_event(dg.AssetKey(["marketing_campaigns", "campaigns"]))
        metadata = event.asset_materialization.metadata
        assert metadata["rows_read"].value == 3_000
        assert metadata["rows_accepted"].value == scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns")
    assert (home / "storage").is_dir()  # the instance lives in DAGSTER_HOME, not the working folder
    assert not (tmp_path / ".etl_home").exists()


def test_a_run_waits_for_the_warehouse_pool(demo_landing, etl_home, tmp_path):
    """While another writer holds the pool's only slot, a run queues instead of hitting DuckDB's lock."""
    home = dagster_home(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        assert storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1  # from dagster.yaml
        holder = storage.claim_concurrency_slot(WAREHOUSE_POOL, "another-writer", "its_load")
        assert holder.is_claimed

        run = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "dagster"),
                "asset",
                "materialize",
                "-m",
                "etl_platform.definitions",
                "--select",
                CAMPAIGN_ASSETS,
            ],
            cwd=tmp_path,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        blocked = False
        for _ in range(120):
            time.sleep(0.5)
            runs = instance.get_runs()
            blocked = bool(runs) and any(
                "blocked by limit for pool duckdb_warehouse" in (e.user_message or "")
                for e in instance.all_logs(runs[0].run_id)
            )
            if blocked or run.poll() is not None:
                break
        assert blocked, "the run did not wait for the pool"
        time.sleep(2)
        assert run.poll() is None, "the run went ahead while the pool was full"
        assert not (etl_home / "warehouse.duckdb").exists()

        storage.free_concurrency_slot_for_step("another-writer", "its_load")
        output = run.communicate(timeout=300)[0]
        assert run.returncode == 0, output[-3000:]
        assert instance.get_runs()[0].status == dg.DagsterRunStatus.SUCCESS
    assert scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns") > 0


KILLABLE_LOAD = """
import sys
from pathlib import Path
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import ingest, load_target
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.resources.warehouse import WarehouseResource

landing = Path(sys.argv[1])
spec = PipelineSpec.model_validate({
    "source": {"files": "*.csv", "columns": {"n": {"type": "bigint"}, "label": {}}},
    "destination": {"table": "t"},
})
files = sorted(landing.glob("*.csv"))
with WarehouseResource().get_connection() as con:
    ingest.run(con, spec, pipeline="p", files=files, relative=lambda p: p.name,
               target=load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected")),
               run_id=sys.argv[2], log=lambda m: print(m, flush=True), progress_interval=0.05)
print("DONE", flush=True)
"""


def test_a_load_killed_midway_leaves_the_previous_table(landing, etl_home, tmp_path):
    script = tmp_path / "load.py"
    script.write_text(KILLABLE_LOAD)
    (landing / "rows.csv").write_text("n,label\n" + "".join(f"{i},old\n" for i in range(10)))
    first = subprocess.run(
        [sys.executable, str(script), str(landing), "run-1"], capture_output=True, text=True, timeout=120
    )
    assert "DONE" in first.stdout, first.stderr

    con = duckdb.connect()
    con.execute(f"COPY (SELECT i AS n, 'new' AS label FROM range(6000000) t(i)) TO '{landing / 'rows.csv'}' (HEADER)")
    con.close()
    child = subprocess.Popen([sys.executable, str(script), str(landing), "run-2"], stdout=subprocess.PIPE, text=True)
    for line in child.stdout:
        if "rows read so far" in line and not line.startswith("t: ~0 rows"):
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, "the load finished before it could be killed"

    # Readers still see the old table, and no rejected rows of the killed run.
    assert query(etl_home, "SELECT label, count(*) FROM p.t GROUP BY label") == [("old", 10)]
    assert scalar(etl_home, "SELECT count(*) FROM p.t_rejected WHERE run_id = 'run-2'") == 0

    rerun = subprocess.run(
        [sys.executable, str(script), str(landing), "run-3"], capture_output=True, text=True, timeout=300
    )
    assert "DONE" in rerun.stdout, rerun.stderr
    assert query(etl_home, "SELECT label, count(*) FROM p.t GROUP BY label") == [("new", 6_000_000)]
    # Whatever the killed run had staged is gone.
    assert scalar(etl_home, "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__stage%'") == 0


def test_the_published_schema_is_current_and_accepts_the_demo_pipelines():
    assert json.loads(SCHEMA_PATH.read_text()) == pipeline_file_schema(), "run: etl-platform schema --write"
    for path in (PROJECT_ROOT / "etl_platform" / "defs" / "pipelines").glob("*/defs.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), pipeline_file_schema())


def test_demo_generate_is_deterministic(tmp_path):
    for name in ("a", "b"):
        result = cli(
            "etl-platform", "demo", "generate", "--landing", str(tmp_path / name), "--rows", "2000", "--files", "2"
        )
        assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 7  # 2 campaign exports, customers, 3 order files, the store sales SQLite database
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    again = cli("etl-platform", "demo", "generate", "--landing", str(tmp_path / "a"), "--if-missing")
    assert "already" in again.stdout


def test_etl_platform_pipelines_validate(demo_landing, etl_home):
    result = cli("etl-platform", "pipelines", "validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok: 32 assets, 8 jobs"

    # A mapped column that none of the files has is reported with the file and field.
    for path in (demo_landing / "campaigns").glob("*.csv"):
        text = path.read_text()
        path.write_text(text.replace("Link clicks", "Clicks (all)", 1))
    failed = cli("etl-platform", "pipelines", "validate")
    assert failed.returncode == 1
    assert (
        "marketing_campaigns/defs.yaml:15 - attributes.source.columns.clicks.from: column 'Link clicks'"
        in failed.stderr
    )


def test_state_reset_rewinds_or_forgets_a_pipeline_cursor(etl_home):
    import duckdb

    from etl_platform.destinations.warehouse import state as warehouse_state

    with duckdb.connect(str(etl_home / "warehouse.duckdb")) as con:
        warehouse_state.reset_state(con, "orders", "2024-05-01 00:00:00")
    listed = cli("etl-platform", "state", "list")
    assert listed.returncode == 0 and "orders\t2024-05-01 00:00:00" in listed.stdout
    asked = cli("etl-platform", "state", "reset", "orders", "--to", "2024-04-01")
    assert asked.returncode == 1 and "add --yes to confirm" in asked.stderr and "nothing changed" in asked.stderr
    assert "the next load rewinds to the cursor = '2024-04-01'" in asked.stdout
    rewound = cli("etl-platform", "state", "reset", "orders", "--to", "2024-04-01", "--yes")
    assert rewound.returncode == 0 and "'2024-05-01 00:00:00' -> '2024-04-01'" in rewound.stdout
    assert cli("etl-platform", "state", "reset", "orders", "--yes").returncode == 0
    assert "orders\t(next load: full refresh)" in cli("etl-platform", "state", "list").stdout
    history = cli("etl-platform", "state", "history", "orders")
    assert history.returncode == 0 and [line.split("\t")[1] for line in history.stdout.splitlines()[2:]] == [
        "reset",
        "rewind",
        "rewind",
    ]


def test_state_reset_lets_a_file_pipeline_read_its_loaded_files_again(demo_landing, etl_home, instance):
    first = materializations(run_job("shop_orders_job", instance))["shop_orders/orders"]
    again = materializations(run_job("shop_orders_job", instance))["shop_orders/orders"]
    assert first["rows_read"] > 0 and again["rows_read"] == 0 and again["files_duplicate"] == first["files_read"]
    reset = cli("etl-platform", "state", "reset", "shop_orders", "--yes")
    assert reset.returncode == 0 and f"{first['files_read']} loaded file(s) forgotten" in reset.stdout
    reread = materializations(run_job("shop_orders_job", instance))["shop_orders/orders"]
    assert reread["rows_read"] == first["rows_read"]
    assert (
        scalar(etl_home, "SELECT count(*) - count(DISTINCT order_id) FROM shop_orders.orders") == 0
    )  # merged, not doubled


def test_state_of_a_pipeline_that_loads_into_postgres_lives_in_postgres(etl_home, tmp_path, postgres_database):
    from etl_platform.destinations.postgres import state as postgres_state

    db = postgres_database
    defs = tmp_path / "defs"
    (defs / "connections").mkdir(parents=True)
    (defs / "pipelines" / "orders").mkdir(parents=True)
    (defs / "connections" / "defs.yaml").write_text(
        "type: etl_platform.components.Connections\nattributes:\n  connections:\n    dwh:\n"
        f"      kind: postgres\n      host: {db['host']}\n      port: {db['port']}\n      database: {db['dbname']}\n   "
        f"   user: {db['user']}\n"
    )
    (defs / "pipelines" / "orders" / "defs.yaml").write_text(
        VALID.replace("table: costs", "table: costs\n    connection: dwh").split("  transforms:")[0]
        + "  sync: {mode: incremental, cursor: day}\n"
    )
    dsn = f"host={db['host']} port={db['port']} dbname={db['dbname']} user={db['user']}"
    postgres_state.reset_state(dsn, "orders", "2024-05-01")
    listed = cli("etl-platform", "state", "list", "--defs", str(defs))
    assert listed.returncode == 0, listed.stderr
    assert "orders\t2024-05-01\tin PostgreSQL table orders.costs of connection dwh" in listed.stdout
    rewound = cli("etl-platform", "state", "reset", "orders", "--to", "2024-04-01", "--defs", str(defs), "--yes")
    assert rewound.returncode == 0 and "'2024-05-01' -> '2024-04-01'" in rewound.stdout
    assert postgres_state.saved_cursor(dsn, "orders") == "2024-04-01"
    assert cli("etl-platform", "state", "reset", "orders", "--defs", str(defs), "--yes").returncode == 0
    assert postgres_state.saved_cursor(dsn, "orders") is None
