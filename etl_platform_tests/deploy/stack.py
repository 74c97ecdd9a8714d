"""The production deployment of deploy/ started as real processes on loopback, without Docker.

PostgreSQL (a fresh database) holds the Dagster instance, the S3-compatible test server holds
compute logs and MLflow artifacts, Redis is the Celery broker; the code location runs as a
gRPC server, with the daemon, a full and a read-only webserver, two Celery workers and an
MLflow tracking server, each started with the command deploy/README.md gives.
"""

import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from etl_platform.demo import data as demo
from etl_platform_tests.conftest import BIN, PROJECT_ROOT, _service_unavailable, fresh_postgres_database
from etl_platform_tests.deploy.processes import Processes, free_port, http_ok, wait_until
from etl_platform_tests.s3_server import S3Server

DEPLOY = PROJECT_ROOT / "deploy"
WORKERS = ("worker1", "worker2")
REDIS_HOST, REDIS_PORT = (
    os.environ.get("ETL_TEST_REDIS_HOST", "127.0.0.1"),
    int(os.environ.get("ETL_TEST_REDIS_PORT", "6379")),
)


@dataclass
class Deployment:
    webserver: str  # operators' webserver
    read_only_webserver: str  # viewers' webserver
    mlflow: str
    etl_home: Path
    bucket: str
    s3: S3Server
    processes: Processes
    env: dict[str, str]


@contextmanager
def empty_redis_database():
    """The number of an empty Redis database for the Celery broker, emptied again afterwards."""
    import redis

    try:
        redis.Redis(REDIS_HOST, REDIS_PORT, socket_connect_timeout=3).ping()
    except redis.RedisError as err:
        _service_unavailable(
            f"Redis on {REDIS_HOST}:{REDIS_PORT}",
            f"start it (`redis-server --port 6379`, or set ETL_TEST_REDIS_HOST/PORT) ({err})",
        )
    for number in range(15, 0, -1):
        client = redis.Redis(REDIS_HOST, REDIS_PORT, db=number)
        # SETNX claims the database against a concurrent test run picking the same one.
        if client.dbsize() == 0 and client.set("etl-deploy-test", "claimed", nx=True):
            try:
                yield number
            finally:
                client.flushdb()
            return
    raise AssertionError("no empty Redis database among 1-15 for the Celery broker")


def environment(
    db: dict, redis_db: int, s3: S3Server, bucket: str, home: Path, etl_home: Path, ports: dict
) -> dict[str, str]:
    """Every variable of the table in deploy/README.md, pointed at this machine's services."""
    broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "DAGSTER_", "MLFLOW_", "AWS_"))}
    return env | {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(PROJECT_ROOT),
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": db["host"],
        "DAGSTER_PG_PORT": str(db["port"]),
        "DAGSTER_PG_USER": db["user"],
        "DAGSTER_PG_PASSWORD": db["password"],
        "DAGSTER_PG_DB": db["dbname"],
        "DAGSTER_GRPC_HOST": "127.0.0.1",
        "DAGSTER_GRPC_PORT": str(ports["grpc"]),
        "ETL_S3_BUCKET": bucket,
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "AWS_REGION": s3.region,
        "AWS_DEFAULT_REGION": s3.region,
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
        "ETL_HOME": str(etl_home),
        "ETL_EXECUTOR": "celery",
        "ETL_CELERY_BROKER_URL": broker,
        "ETL_CELERY_BACKEND_URL": broker,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['mlflow']}",
        "MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url,
    }


@contextmanager
def deployment(s3: S3Server, folder: Path):
    with fresh_postgres_database("etl_deploy") as db, empty_redis_database() as redis_db:
        bucket = f"etl-deploy-{uuid.uuid4().hex[:10]}"
        s3.client().create_bucket(Bucket=bucket)
        home, etl_home, logs = folder / "dagster_home", folder / "etl_home", folder / "logs"
        for path in (home, etl_home / "landing", logs):
            path.mkdir(parents=True)
        (home / "dagster.yaml").symlink_to(DEPLOY / "dagster.yaml")
        demo.generate(etl_home / "landing", campaign_rows=3_000, campaign_files=3)
        ports = {name: free_port() for name in ("grpc", "webserver", "read_only", "mlflow")}
        env = environment(db, redis_db, s3, bucket, home, etl_home, ports)
        processes = Processes(logs, env)
        try:
            start(processes, ports, folder, bucket)
            yield Deployment(
                webserver=f"http://127.0.0.1:{ports['webserver']}",
                read_only_webserver=f"http://127.0.0.1:{ports['read_only']}",
                mlflow=env["MLFLOW_TRACKING_URI"],
                etl_home=etl_home,
                bucket=bucket,
                s3=s3,
                processes=processes,
                env=env,
            )
        finally:
            processes.stop_all()


def start(processes: Processes, ports: dict, folder: Path, bucket: str) -> None:
    """The code server, workers and MLflow first (they take longest), then what needs the code server."""
    workspace = str(DEPLOY / "workspace.yaml")
    processes.start(
        "code-server",
        "dagster",
        "api",
        "grpc",
        "-m",
        "etl_platform.definitions",
        "-h",
        "127.0.0.1",
        "-p",
        str(ports["grpc"]),
    )
    for name in WORKERS:
        # --pool=solo: one process per worker, steps run in it; production workers use the default prefork pool.
        processes.start(
            name,
            "dagster-celery",
            "worker",
            "start",
            "-A",
            "dagster_celery.app",
            "-y",
            str(DEPLOY / "celery.yaml"),
            "-n",
            name,
            "--",
            "--pool=solo",
        )
    processes.start(
        "mlflow",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination",
        f"s3://{bucket}/mlflow",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports["mlflow"]),
        "--workers",
        "1",
    )
    code_server = processes.started[0]
    wait_until("the code server", lambda: "Started Dagster code server" in code_server.output(), processes)
    processes.start("daemon", "dagster-daemon", "run", "-w", workspace)
    processes.start("webserver", "dagster-webserver", "-w", workspace, "-h", "127.0.0.1", "-p", str(ports["webserver"]))
    processes.start(
        "webserver-read-only",
        "dagster-webserver",
        "-w",
        workspace,
        "-h",
        "127.0.0.1",
        "-p",
        str(ports["read_only"]),
        "--read-only",
    )
    for port in (ports["webserver"], ports["read_only"]):
        wait_until(
            f"the webserver on port {port}",
            lambda port=port: http_ok(f"http://127.0.0.1:{port}/server_info"),
            processes,
        )
    for name in WORKERS:
        worker = next(p for p in processes.started if p.name == name)
        wait_until(f"Celery {name}", lambda worker=worker: " ready." in worker.output(), processes)
    wait_until("MLflow", lambda: http_ok(f"http://127.0.0.1:{ports['mlflow']}/health"), processes)
