"""deploy/: the production instance configuration, started on a real PostgreSQL."""

import os
import re
import shutil
import subprocess

import dagster as dg
import psycopg2
import pytest
import yaml

from etl_platform.location.executor import chosen_executor
from etl_platform_tests.conftest import PROJECT_ROOT, materializations, run_job

DEPLOY = PROJECT_ROOT / "deploy"


def test_production_instance_runs_a_pipeline_on_postgres(
    demo_landing, etl_home, tmp_path, monkeypatch, postgres_database
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(DEPLOY / "dagster.yaml")
    db = postgres_database
    for var, value in {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": db["host"],
        "DAGSTER_PG_PORT": str(db["port"]),
        "DAGSTER_PG_USER": db["user"],
        "DAGSTER_PG_PASSWORD": db["password"],
        "DAGSTER_PG_DB": db["dbname"],
        "ETL_S3_BUCKET": "compute-logs",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
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
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            [result.run_id],
        )
        assert cur.fetchone()[0] >= 4


def test_production_config_takes_every_environment_specific_setting_from_the_environment():
    text = (DEPLOY / "dagster.yaml").read_text()
    config = yaml.safe_load(text)
    db = config["storage"]["postgres"]["postgres_db"]
    assert all(isinstance(v, dict) and set(v) == {"env"} for k, v in db.items() if k != "scheme")
    assert config["compute_logs"]["config"]["bucket"] == {"env": "ETL_S3_BUCKET"}
    assert config["concurrency"]["pools"]["default_limit"] == 1


# --- the deployment bundle: compose file, Helm values, proxy and docs agree --------------------

README = (DEPLOY / "README.md").read_text()
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
HELM = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
DAGSTER_SERVICES = {
    "code-location",
    "dagster-webserver",
    "dagster-webserver-read-only",
    "dagster-daemon",
    "celery-worker",
}


def documented_variables() -> set[str]:
    """The names in the first column of deploy/README.md's variable table."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", README, flags=re.M))


def variables_used() -> set[str]:
    """Every environment variable a file in deploy/ reads: `{env: X}` in Dagster YAML, `${X}` in compose."""
    used = set()
    for name in ("dagster.yaml", "workspace.yaml", "celery.yaml"):
        used |= set(re.findall(r"\{env: ([A-Z0-9_]+)\}", (DEPLOY / name).read_text()))
    compose_text = (DEPLOY / "docker-compose.yml").read_text()
    used |= set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))
    used |= {k for service in COMPOSE["services"].values() for k in (service.get("environment") or {})}
    return used


def test_the_compose_file_describes_the_whole_stack():
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        env = {**os.environ, "POSTGRES_PASSWORD": "x", "MINIO_ROOT_PASSWORD": "x"}
        result = subprocess.run(
            ["docker", "compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, result.stderr
    services = COMPOSE["services"]
    assert DAGSTER_SERVICES | {"postgres", "minio", "minio-buckets", "mlflow", "auth-proxy", "redis"} <= set(services)
    for name in DAGSTER_SERVICES:
        assert services[name]["image"] == "${ETL_IMAGE:-etl-platform:latest}", name
        assert services[name]["environment"]["DAGSTER_PG_HOST"] == "postgres"
        assert "etl_master_password" in services[name]["secrets"]
    assert "--read-only" in services["dagster-webserver-read-only"]["command"]
    assert "--read-only" not in services["dagster-webserver"]["command"]
    assert services["code-location"]["command"][:5] == ["dagster", "api", "grpc", "-m", "etl_platform.definitions"]
    assert services["redis"]["profiles"] == services["celery-worker"]["profiles"] == ["celery"]
    assert services["minio-buckets"]["restart"] == "no" and "mc mb" in services["minio-buckets"]["command"][0]
    mlflow = " ".join(services["mlflow"]["command"])
    assert "postgresql+psycopg2://" in mlflow and '--artifacts-destination "s3://' in mlflow
    # Every path the compose file mounts exists in deploy/.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), volume


def test_every_setting_that_differs_per_environment_is_a_documented_variable():
    documented, used = documented_variables(), variables_used()
    assert used - documented == set(), "used in deploy/ but missing from deploy/README.md's table"
    helm_env = set(HELM["dagster-user-deployments"]["deployments"][0]["env"]) | set(HELM["dagsterWebserver"]["env"])
    assert helm_env - documented == set(), "set in the Helm values but missing from deploy/README.md's table"
    assert documented - used - helm_env == set(), "documented but used nowhere"


def test_helm_values_compose_and_docs_name_the_same_image_ports_and_commands():
    deployment = HELM["dagster-user-deployments"]["deployments"][0]
    assert deployment["image"]["repository"] == "etl-platform" and "`etl-platform:<tag>`" in README
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "etl_platform.definitions"]
    compose_grpc = COMPOSE["services"]["code-location"]["command"]
    assert str(deployment["port"]) == compose_grpc[compose_grpc.index("-p") + 1] == "4000"
    assert "| code location (gRPC) | 4000 |" in README and "| webservers | 3000 |" in README
    assert HELM["runLauncher"]["type"] == "K8sRunLauncher"
    assert HELM["dagsterWebserver"]["enableReadOnly"] is True
    assert HELM["postgresql"]["enabled"] is False
    compose_env = COMPOSE["x-dagster-env"]
    shared = set(deployment["env"]) & set(compose_env)
    assert {"ETL_EXECUTOR", "ETL_HOME", "ETL_S3_BUCKET", "MLFLOW_TRACKING_URI", "ETL_MASTER_PASSWORD_FILE"} <= shared


def test_the_executor_is_chosen_by_an_environment_variable(monkeypatch):
    monkeypatch.delenv("ETL_EXECUTOR", raising=False)
    assert chosen_executor().name == "in_process"
    monkeypatch.setenv("ETL_EXECUTOR", "celery")
    monkeypatch.setenv("ETL_CELERY_BROKER_URL", "redis://:canary-broker-password@127.0.0.1:6379/0")
    celery = chosen_executor()
    assert celery.name == "celery"
    # The broker URL (and its password) stays an environment reference until a run starts;
    # without a backend URL of its own, the result backend is the broker.
    configured = celery.config_schema._config_fn({})
    assert configured == {"broker": {"env": "ETL_CELERY_BROKER_URL"}, "backend": {"env": "ETL_CELERY_BROKER_URL"}}
    monkeypatch.setenv("ETL_EXECUTOR", "spark")
    with pytest.raises(ValueError, match="ETL_EXECUTOR='spark'"):
        chosen_executor()


def test_the_auth_proxy_configuration_is_accepted_by_nginx(tmp_path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        pytest.skip("needs nginx to check deploy/nginx/nginx.conf; install it (`apt-get install -y nginx`)")
    for name in ("nginx.conf", "roles.conf"):
        shutil.copy(DEPLOY / "nginx" / name, tmp_path / name)
    shutil.copy(DEPLOY / "nginx" / "htpasswd.example", tmp_path / "htpasswd")
    # The compose file's upstreams are service names only Docker's DNS knows: check with loopback ones.
    (tmp_path / "upstreams.conf").write_text(
        "upstream dagster_operators { server 127.0.0.1:3001; }\nupstream dagster_viewers { server 127.0.0.1:3002; }\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    upstreams = (DEPLOY / "nginx" / "upstreams.conf").read_text()
    assert "server dagster-webserver:3000;" in upstreams and "server dagster-webserver-read-only:3000;" in upstreams
