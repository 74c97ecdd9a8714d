"""Every kind of change the UI can make, as GraphQL mutations, to check a read-only webserver refuses them."""

import json

from etl_platform_tests.deploy.graphql import ASSET_JOB, LOCATION, REPOSITORY, data, execution_params, graphql

REPO = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
CAMPAIGNS = {"path": ["marketing_campaigns", "campaigns"]}
TERMINATED = "__typename ... on TerminateRunFailure { message }"


def _mutation(field: str, signature: str, arguments: str, selection: str = "__typename") -> str:
    return f"mutation M({signature}) {{ {field}({arguments}) {{ {selection} }} }}"


def _scalar_mutation(field: str, signature: str, arguments: str) -> str:
    return f"mutation M({signature}) {{ {field}({arguments}) }}"


# (name, query, variables from the context: {"run_id", "schedule", "schedule_id", "sensor", "sensor_id"}).
# Real names and ids, not placeholders: the refusal must come from the read-only mode, not from a bad request.
MUTATIONS = [
    (
        "launch a job",
        _mutation("launchRun", "$p: ExecutionParams!", "executionParams: $p"),
        lambda c: {"p": execution_params("marketing_campaigns_job")},
    ),
    (
        "materialize assets",
        _mutation("launchRun", "$p: ExecutionParams!", "executionParams: $p"),
        lambda c: {
            "p": execution_params(ASSET_JOB, [CAMPAIGNS["path"], ["marketing_campaigns", "campaigns_rejected"]])
        },
    ),
    (
        "re-execute a run",
        _mutation("launchRunReexecution", "$r: ReexecutionParams", "reexecutionParams: $r"),
        lambda c: {"r": {"parentRunId": c["run_id"], "strategy": "ALL_STEPS"}},
    ),
    (
        "terminate a run",
        _mutation("terminateRun", "$id: String!", "runId: $id", TERMINATED),
        lambda c: {"id": c["run_id"]},
    ),
    (
        "terminate runs",
        _mutation(
            "terminateRuns",
            "$ids: [String!]!",
            "runIds: $ids",
            f"__typename ... on TerminateRunsResult {{ terminateRunResults {{ {TERMINATED} }} }}",
        ),
        lambda c: {"ids": [c["run_id"]]},
    ),
    ("delete a run", _mutation("deleteRun", "$id: String!", "runId: $id"), lambda c: {"id": c["run_id"]}),
    (
        "wipe an asset",
        _mutation("wipeAssets", "$a: [PartitionsByAssetSelector!]!", "assetPartitionRanges: $a"),
        lambda c: {"a": [{"assetKey": CAMPAIGNS}]},
    ),
    (
        "report an asset event",
        _mutation("reportRunlessAssetEvents", "$e: ReportRunlessAssetEventsParams!", "eventParams: $e"),
        lambda c: {"e": {"eventType": "ASSET_MATERIALIZATION", "assetKey": CAMPAIGNS}},
    ),
    (
        "start a schedule",
        _mutation("startSchedule", "$s: ScheduleSelector!", "scheduleSelector: $s"),
        lambda c: {"s": {**REPO, "scheduleName": c["schedule"]}},
    ),
    ("stop a schedule", _mutation("stopRunningSchedule", "$id: String", "id: $id"), lambda c: {"id": c["schedule_id"]}),
    (
        "reset a schedule",
        _mutation("resetSchedule", "$s: ScheduleSelector!", "scheduleSelector: $s"),
        lambda c: {"s": {**REPO, "scheduleName": c["schedule"]}},
    ),
    (
        "start a sensor",
        _mutation("startSensor", "$s: SensorSelector!", "sensorSelector: $s"),
        lambda c: {"s": {**REPO, "sensorName": c["sensor"]}},
    ),
    ("stop a sensor", _mutation("stopSensor", "$id: String", "id: $id"), lambda c: {"id": c["sensor_id"]}),
    (
        "move a sensor's cursor",
        _mutation("setSensorCursor", "$s: SensorSelector!, $c: String", "sensorSelector: $s, cursor: $c"),
        lambda c: {"s": {**REPO, "sensorName": c["sensor"]}, "c": "0"},
    ),
    (
        "launch a backfill",
        _mutation("launchPartitionBackfill", "$b: LaunchBackfillParams!", "backfillParams: $b"),
        lambda c: {"b": {"assetSelection": [CAMPAIGNS], "partitionNames": ["2025-01-01"]}},
    ),
    (
        "set a pool's limit",
        _scalar_mutation("setConcurrencyLimit", "$k: String!, $n: Int!", "concurrencyKey: $k, limit: $n"),
        lambda c: {"k": "duckdb_warehouse", "n": 5},
    ),
    (
        "free a run's pool slots",
        _scalar_mutation("freeConcurrencySlots", "$id: String!", "runId: $id"),
        lambda c: {"id": c["run_id"]},
    ),
    (
        "pause auto-materialize",
        _scalar_mutation("setAutoMaterializePaused", "$p: Boolean!", "paused: $p"),
        lambda c: {"p": True},
    ),
    (
        "shut the code server down",
        _mutation("shutdownRepositoryLocation", "$l: String!", "repositoryLocationName: $l"),
        lambda c: {"l": LOCATION},
    ),
]


def rejected(url: str, query: str, variables: dict) -> str:
    """Why the webserver refused the mutation, or "" when it accepted it."""
    body = graphql(url, query, variables)
    # Mutations typed Boolean cannot return UnauthorizedError: the refusal arrives as an error naming it.
    for error in body.get("errors") or []:
        message = error.get("message", "")
        if "UnauthorizedError" in message or "permission" in message.lower():
            return message
        raise AssertionError(f"a malformed request, not a refusal: {message}")
    text = json.dumps(body.get("data"))
    if '"UnauthorizedError"' in text:
        return "UnauthorizedError"
    if "do not have permission" in text:
        return text
    return ""


SCHEDULE = """
query Schedule($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) { __typename ... on Schedule { id } } }
"""

SENSOR = """
query Sensor($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename ... on Sensor { id } } }
"""


def schedule_id(url: str, schedule: str) -> str:
    """The id the UI's schedule switch sends to stop a schedule."""
    found = data(url, SCHEDULE, {"s": {**REPO, "scheduleName": schedule}})["scheduleOrError"]
    assert found["__typename"] == "Schedule", found
    return found["id"]


def sensor_id(url: str, sensor: str) -> str:
    """The id the UI's sensor switch sends to stop a sensor."""
    found = data(url, SENSOR, {"s": {**REPO, "sensorName": sensor}})["sensorOrError"]
    assert found["__typename"] == "Sensor", found
    return found["id"]
