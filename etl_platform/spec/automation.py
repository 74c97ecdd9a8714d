"""The automation sections of a pipeline: triggers (schedule, file sensor), retries, freshness.

Every field description here is the user's documentation.
"""

from pydantic import Field, model_validator

from etl_platform.spec.base import SpecModel


class TriggersSpec(SpecModel):
    """When the pipeline runs by itself."""

    cron: str | None = Field(None, description="Cron schedule, e.g. '0 6 * * *' for 06:00 every day.")
    timezone: str = Field("UTC", description="IANA timezone for the cron schedule, e.g. 'Europe/Berlin'.")
    start_running: bool = Field(
        False, description="Whether the schedule starts switched on; otherwise switch it on in the UI."
    )
    on_new_files: bool = Field(
        False,
        description="Run when new or changed files appear in the source's folder or S3 prefix (the sensor "
        "'<pipeline>_file_sensor', switched on from the start; switch it off in the UI to pause). Each file "
        "runs once: a file is known by name, size and modification time or ETag, and by its content, so "
        "the same bytes under another name do not run again.",
    )
    min_interval_seconds: int = Field(
        30, ge=5, description="How often the folder is looked at for new files, in seconds."
    )
    settle_seconds: int = Field(
        10,
        ge=0,
        description="A new file runs once it has not changed (size and modification time) for this many "
        "seconds, so a file still being written waits. A file changed more recently than this is looked at "
        "again within the same look when it would settle in time, so it still runs within one interval.",
    )
    max_files_per_tick: int = Field(
        500,
        ge=1,
        le=10_000,
        description="Most new files taken up in one look; the rest are taken up by the next looks, so a "
        "burst of thousands of files never times out.",
    )


class RetrySpec(SpecModel):
    """How a step that fails for a passing reason is tried again."""

    max_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Times the load and the SQL models are tried again after a transient failure (connection "
        "reset, timeout, HTTP 429 or 5xx, a locked warehouse). Permanent failures (bad credentials, bad data, "
        "a schema mismatch) fail at once.",
    )
    delay_seconds: float = Field(
        5,
        ge=0,
        description="Wait before the first retry; each later retry waits twice as long, give or take a random share.",
    )


class FreshnessSpec(SpecModel):
    """How old the table may get before it counts as stale: the table's Dagster freshness policy."""

    max_age_hours: float = Field(
        ge=1 / 60,
        description="The table is stale when its last load is older than this many hours (one minute at least): "
        "its freshness turns to FAIL in the UI and the alerts are sent.",
    )
    warn_after_hours: float | None = Field(
        None,
        ge=1 / 60,
        description="Freshness turns to WARN when the last load is older than this (less than max_age_hours).",
    )

    @model_validator(mode="after")
    def _warn_before_fail(self) -> "FreshnessSpec":
        if self.warn_after_hours is not None and self.warn_after_hours >= self.max_age_hours:
            raise ValueError("warn_after_hours must be less than max_age_hours")
        return self
