"""Run statuses, run tags and check-record statuses that Dagster does not export.

The file sensor reads what became of the runs it asked for, and the alerts read check
evaluations, from the instance's records; the names below are how Dagster 1.13.27 spells
them (``dagster._core.storage``). Not a speed-up: ``ETL_DAGSTER_SPEEDUPS`` leaves them. On
an upgrade, etl_platform_tests/automation exercises every one against a real instance.
"""

from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES as COMPLETED_CHECK_STATUSES,
)
from dagster._core.storage.dagster_run import FINISHED_STATUSES
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG, WILL_RETRY_TAG

__all__ = [
    "COMPLETED_CHECK_STATUSES",
    "FINISHED_STATUSES",
    "PARTITION_NAME_TAG",
    "RUN_KEY_TAG",
    "SENSOR_NAME_TAG",
    "WILL_RETRY_TAG",
]
