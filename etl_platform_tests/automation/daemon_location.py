"""A small code location for the daemon test: a file sensor on ETL_LANDING_DIR and a schedule."""

import os
from pathlib import Path

import dagster as dg

from etl_platform.automation.listing import LocalListing
from etl_platform.automation.sensors import FileWatch, file_sensor
from etl_platform.connectors.landing import LocalFolder


@dg.asset
def landed(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    files = sorted(p.name for p in Path(os.environ["ETL_LANDING_DIR"]).glob("*.csv"))
    return dg.MaterializeResult(metadata={"files": len(files)})


@dg.asset
def heartbeat() -> None:
    pass


landed_job = dg.define_asset_job("landed_job", selection=[landed])
heartbeat_job = dg.define_asset_job("heartbeat_job", selection=[heartbeat])

defs = dg.Definitions(
    assets=[landed, heartbeat],
    jobs=[landed_job, heartbeat_job],
    schedules=[dg.ScheduleDefinition(name="heartbeat_schedule", cron_schedule="* * * * *", job=heartbeat_job)],
    sensors=[
        file_sensor(
            FileWatch(pipeline="landed", pattern="*.csv", job_name="landed_job", settle_seconds=0, max_files=100),
            lambda context: LocalListing(LocalFolder(Path(os.environ["ETL_LANDING_DIR"]))),
            job=landed_job,
            minimum_interval_seconds=1,
        )
    ],
    executor=dg.in_process_executor,
)
