"""The ``partitions`` section of a pipeline: time windows or one partition per file.

Every field description here is the user's documentation (it is what an editor shows
when autocompleting ``defs.yaml``).
"""

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from etl_platform.spec.base import SpecModel


class PartitionsSpec(SpecModel):
    """How the pipeline's table is split into partitions that load, rerun and backfill on their own.

    A partition's load deletes exactly its rows and inserts the new ones in one transaction:
    rerunning a partition never duplicates rows and never touches other partitions.
    """

    by: Literal["hourly", "daily", "weekly", "monthly", "file"] = Field(
        "daily",
        description="hourly, daily, weekly (weeks start on Sunday) or monthly: one partition per time window "
        "of `column`. file: one partition per source file (file sources only); its key is the file's path "
        "relative to the connection's folder, e.g. 'campaigns/2024-05-01.csv', and a run for it reads only "
        "that file and replaces only that file's rows (needs destination.lineage_columns).",
    )
    start: str | None = Field(
        None,
        description="First partition, as an ISO date or date and time, e.g. '2024-01-01' or "
        "'2024-01-01 06:00' for hourly partitions. Required for time partitions.",
    )
    timezone: str = Field(
        "UTC",
        description="IANA timezone the windows are cut in, e.g. 'Europe/Berlin': a daily partition runs "
        "from local midnight to local midnight.",
    )
    column: str | None = Field(
        None,
        description="Target column (a date or timestamp) whose value decides a row's partition: a partition "
        "holds the rows with window_start <= column < window_end. A SQL source filters the column it is "
        "mapped from in the query it runs. Required for time partitions.",
    )
    start_param: str | None = Field(
        None,
        description="For a REST source: the query parameter that receives the window's start (inclusive).",
    )
    end_param: str | None = Field(
        None,
        description="For a REST source: the query parameter that receives the window's end (exclusive).",
    )
    param_format: str | None = Field(
        None,
        description="strftime format of start_param and end_param, e.g. '%Y-%m-%d'. Default: ISO 8601 with "
        "the UTC offset, e.g. '2024-05-01T00:00:00+00:00'.",
    )
    backfill: Literal["run_per_partition", "single_run"] = Field(
        "run_per_partition",
        description="How a backfill of many time partitions runs. run_per_partition: one run each. single_run: "
        "one run reads the whole range and replaces it in one transaction (fewer, larger reads; a failure "
        "keeps the whole range as it was). Per-file partitions always run one per file.",
    )

    @property
    def by_time(self) -> bool:
        return self.by != "file"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, timezone: str) -> str:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(
                f"unknown timezone {timezone!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
            ) from err
        return timezone

    @field_validator("start")
    @classmethod
    def _iso_start(cls, start: str | None) -> str | None:
        if start is not None:
            try:
                datetime.fromisoformat(start)
            except ValueError as err:
                raise ValueError(f"start {start!r} is not an ISO date or date and time, e.g. '2024-01-01'") from err
        return start

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> "PartitionsSpec":
        if self.by_time:
            lacking = [f for f in ("start", "column") if getattr(self, f) is None]
            if lacking:
                raise ValueError(f"{self.by} partitions need {' and '.join(lacking)}")
            if (self.start_param is None) != (self.end_param is None):
                raise ValueError("give both start_param and end_param, or neither")
        else:
            given = [
                f
                for f in ("start", "column", "start_param", "end_param", "param_format")
                if getattr(self, f) is not None
            ]
            if given:
                raise ValueError(f"per-file partitions take no {', '.join(given)}: each file is its own partition")
            if self.backfill == "single_run":
                raise ValueError("per-file partitions run one per file; backfill single_run is for time partitions")
        return self

    def start_datetime(self) -> datetime:
        """The first partition's start, as a naive local date and time."""
        assert self.start is not None
        return datetime.fromisoformat(self.start).replace(tzinfo=None)
