"""Dagster's GraphQL API as the UI uses it: plain HTTP POSTs to a webserver's /graphql."""

import time

import requests

LOCATION = "etl_platform"
REPOSITORY = "__repository__"  # the repository Dagster makes of a module's @definitions
ASSET_JOB = "__ASSET_JOB"  # the implicit job the UI launches for "Materialize selected"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    # A query the schema rejects comes back as 400 with the reason in the body.
    # A resolver's error comes back as 500, still with a GraphQL body.
    assert response.status_code in (200, 400, 500), f"{response.status_code}: {response.text[:2000]}"
    return response.json()


def data(url: str, query: str, variables: dict | None = None) -> dict:
    body = graphql(url, query, variables)
    assert not body.get("errors"), body["errors"]
    return body["data"]


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on UnauthorizedError { message }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
  }
}
"""


def execution_params(job: str, assets: list[list[str]] | None = None) -> dict:
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": job}
    if assets is not None:
        selector["assetSelection"] = [{"path": path} for path in assets]
    return {"selector": selector, "runConfigData": {}, "mode": "default"}


def launch(url: str, job: str, assets: list[list[str]] | None = None) -> str:
    result = data(url, LAUNCH, {"params": execution_params(job, assets)})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


RUN_STATUS = """
query Status($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }
"""


def wait_for_run(url: str, run_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = data(url, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in FINISHED:
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} still {status} after {timeout:.0f} s")


RUN_EVENTS = """
query Events($runId: ID!, $after: String) {
  logsForRun(runId: $runId, afterCursor: $after, limit: 1000) {
    __typename
    ... on EventConnection {
      cursor hasMore
      events {
        __typename
        ... on MessageEvent { message stepKey }
        ... on EngineEvent { metadataEntries { label ... on TextMetadataEntry { text } } }
        ... on LogsCapturedEvent { fileKey stepKeys }
        ... on MaterializationEvent { assetKey { path } metadataEntries { label ... on IntMetadataEntry { intValue } } }
      }
    }
  }
}
"""


def run_events(url: str, run_id: str) -> list[dict]:
    events, after = [], None
    while True:
        page = data(url, RUN_EVENTS, {"runId": run_id, "after": after})["logsForRun"]
        events += page["events"]
        if not page["hasMore"]:
            return events
        after = page["cursor"]


def failure_messages(url: str, run_id: str) -> str:
    return "\n".join(
        e.get("message") or ""
        for e in run_events(url, run_id)
        if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent", "EngineEvent")
    )


def celery_workers_by_step(events: list[dict]) -> dict[str, str]:
    """Which Celery worker ran each step: dagster-celery's "Executing steps ... in celery worker" engine event."""
    found = {}
    for event in events:
        entries = {m["label"]: m.get("text") for m in event.get("metadataEntries") or []}
        if event["__typename"] == "EngineEvent" and "Celery worker" in entries:
            found[entries["step_keys"]] = entries["Celery worker"]
    return found


SENSORS = """
query Sensors($repo: RepositorySelector!) {
  sensorsOrError(repositorySelector: $repo) {
    __typename
    ... on Sensors { results { name sensorState { status } } }
  }
}
"""


def sensors(url: str) -> list[dict]:
    repo = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
    return data(url, SENSORS, {"repo": repo})["sensorsOrError"]["results"]


def sensor_names(url: str) -> list[str]:
    return [s["name"] for s in sensors(url)]


def sensor_selector(name: str) -> dict:
    return {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": name}


START_SENSOR = """
mutation Start($sensor: SensorSelector!) {
  startSensor(sensorSelector: $sensor) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""

RUNS_OF_JOB = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status tags { key value } } } }
}
"""


def runs_with_tag(url: str, key: str, value: str) -> list[dict]:
    found = data(url, RUNS_OF_JOB, {"filter": {"tags": [{"key": key, "value": value}]}})["runsOrError"]
    return found["results"]


def run_tags(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["tags"]}


IN_PROGRESS = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]

RUNS_IN_PROGRESS = """
query InProgress($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId jobName status } } }
}
"""


def runs_in_progress(url: str) -> list[dict]:
    return data(url, RUNS_IN_PROGRESS, {"filter": {"statuses": IN_PROGRESS}})["runsOrError"]["results"]


def wait_until_no_run_is_in_progress(url: str, timeout: float = 120) -> None:
    """Until every run (the daemon's sensors launch some) has finished."""
    deadline = time.monotonic() + timeout
    while (busy := runs_in_progress(url)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not busy, f"runs still in progress after {timeout:.0f} s: {busy}"
