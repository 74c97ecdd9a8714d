"""A code location for the daemon test of failed loads: one file pipeline whose load fails on a
file holding 'bad', its file sensor and its check files_not_loaded."""

import os
from pathlib import Path

import dagster as dg

from etl_platform.automation.file_retries import source_files_key
from etl_platform.automation.listing import LocalListing
from etl_platform.automation.not_loaded import files_not_loaded_check
from etl_platform.automation.sensors import FileWatch, file_sensor
from etl_platform.connectors.landing import LocalFolder

SOURCE = source_files_key("landed")


@dg.asset(key=["landed", "table"], deps=[SOURCE])
def landed_table() -> dg.MaterializeResult:
    files = sorted(Path(os.environ["ETL_LANDING_DIR"]).glob("*.csv"))
    for path in files:
        if "bad" in path.read_text():
            raise ValueError(f"{path.name}: line 2: 'bad' is not a number")
    return dg.MaterializeResult(metadata={"files": len(files)})


landed_job = dg.define_asset_job("landed_job", selection=[landed_table])
watch = FileWatch(
    pipeline="landed",
    pattern="*.csv",
    job_name="landed_job",
    settle_seconds=1,
    max_files=100,
    source_key=SOURCE,
    table_key=landed_table.key,
)

defs = dg.Definitions(
    assets=[dg.AssetSpec(SOURCE), landed_table],
    asset_checks=[files_not_loaded_check(SOURCE, watch.sensor_name)],
    jobs=[landed_job],
    sensors=[
        file_sensor(
            watch,
            lambda context: LocalListing(LocalFolder(Path(os.environ["ETL_LANDING_DIR"]))),
            job=landed_job,
            minimum_interval_seconds=1,
        )
    ],
    executor=dg.in_process_executor,
)
