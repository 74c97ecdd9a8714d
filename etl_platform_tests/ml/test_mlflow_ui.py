"""`etl-platform mlflow ui` serves the embedded store the pipelines log to."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from etl_platform.resources.mlflow import MLflowResource
from etl_platform_tests.conftest import BIN, PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mlflow_ui_serves_the_embedded_store(mlflow_store, etl_home):
    resource = MLflowResource()
    resource.experiment_id(resource.client(), "marketing_campaigns_conversions")
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "etl-platform"), "mlflow", "ui", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=marketing_campaigns_conversions"
        deadline, found = time.monotonic() + 90, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    found = json.load(answer)["experiment"]
                    break
            except OSError:
                time.sleep(0.5)
        assert found is not None, server.stdout.read() if server.poll() is not None else "no answer in 90 s"
        assert (
            found["artifact_location"]
            == (etl_home / "mlflow" / "artifacts").as_uri() + "/marketing_campaigns_conversions"
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
