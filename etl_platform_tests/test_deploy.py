"""deploy/: the production instance configuration, started on a real PostgreSQL."""

import dagster as dg
import psycopg2
import yaml

from etl_platform_tests.conftest import PROJECT_ROOT, materializations, run_job

DEPLOY = PROJECT_ROOT / "deploy"


def test_production_instance_runs_a_pipeline_on_postgres(demo_landing, etl_home, tmp_path, monkeypatch, postgres_database):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(DEPLOY / "dagster.yaml")
    db = postgres_database
    for var, value in {
        "DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": db["host"], "DAGSTER_PG_PORT": str(db["port"]),
        "DAGSTER_PG_USER": db["user"], "DAGSTER_PG_PASSWORD": db["password"], "DAGSTER_PG_DB": db["dbname"],
        "ETL_S3_BUCKET": "compute-logs", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(var, value)

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        result = run_job("marketing_campaigns_job", instance)
        assert result.success
        assert materializations(result)["marketing_campaigns/campaigns"]["rows_read"] == 3_000

    with psycopg2.connect(**db) as con, con.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", [result.run_id])
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'", [result.run_id])
        assert cur.fetchone()[0] >= 4


def test_production_config_takes_every_environment_specific_setting_from_the_environment():
    text = (DEPLOY / "dagster.yaml").read_text()
    config = yaml.safe_load(text)
    db = config["storage"]["postgres"]["postgres_db"]
    assert all(isinstance(v, dict) and set(v) == {"env"} for k, v in db.items() if k != "scheme")
    assert config["compute_logs"]["config"]["bucket"] == {"env": "ETL_S3_BUCKET"}
    assert config["concurrency"]["pools"]["default_limit"] == 1
