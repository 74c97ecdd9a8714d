"""Asking a file sensor to run again files whose run failed: ``etl-platform files retry``.

The request is an observation on the pipeline's ``source_files`` asset, recorded through
Dagster's public ``report_runless_asset_event`` (the same event the webserver's
``/report_asset_observation/`` endpoint records), so it needs no access to the sensor's
cursor, works with the daemon running, and shows in the asset's history in the UI. The
sensor reads the observations newer than the last one it read (an indexed look-up by
asset key and storage id) at its next tick, and runs the named files again (all of them
without names) if they are among the files that did not load."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from etl_platform.automation.ledger import Ledger

if TYPE_CHECKING:  # Dagster is imported when used: the command line starts without it
    import dagster as dg


RETRY_METADATA = "etl/retry_files"  # {"all": true} or {"files": [names]}
LOOKBACK_SECONDS = 3600  # a new or lost ledger still honours requests made this recently
_PAGE = 100


def source_files_key(pipeline: str) -> "dg.AssetKey":
    """The asset that stands for a file pipeline's source files (declared by the factory)."""
    import dagster as dg

    return dg.AssetKey([pipeline, "source_files"])


@dataclass
class RetryAsk:
    """What the requests read in one tick ask for."""

    every_file: bool = False
    names: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.every_file or bool(self.names)


def request_retry(instance: "dg.DagsterInstance", pipeline: str, names: list[str] | None) -> None:
    """Record a request to run again ``names`` (every file that did not load when None)."""
    import dagster as dg

    wanted = {"all": True} if not names else {"files": sorted(set(names))}
    what = "every file that did not load" if not names else ", ".join(wanted["files"])
    instance.report_runless_asset_event(
        dg.AssetObservation(
            asset_key=source_files_key(pipeline),
            description=f"Retry asked for: {what}.",
            metadata={RETRY_METADATA: dg.MetadataValue.json(wanted)},
        )
    )


def read_requests(instance: "dg.DagsterInstance", source_key: "dg.AssetKey", ledger: Ledger, now: float) -> RetryAsk:
    """The retry requests recorded since the ledger last read them; moves the ledger past them."""
    import dagster as dg

    ask = RetryAsk()
    cursor = None
    while True:
        if ledger.requests_after is not None:
            records_filter = dg.AssetRecordsFilter(asset_key=source_key, after_storage_id=ledger.requests_after)
        else:
            records_filter = dg.AssetRecordsFilter(asset_key=source_key, after_timestamp=now - LOOKBACK_SECONDS)
        result = instance.fetch_observations(records_filter, limit=_PAGE, cursor=cursor, ascending=True)
        for record in result.records:
            ledger.requests_after = max(ledger.requests_after or 0, record.storage_id)
            observation = record.asset_observation
            value = observation.metadata.get(RETRY_METADATA) if observation else None
            wanted = getattr(value, "value", value)
            if not isinstance(wanted, dict):
                continue  # another observation of the source files
            ask.every_file |= wanted.get("all") is True
            ask.names |= {n for n in wanted.get("files") or [] if isinstance(n, str)}
        if not result.has_more:
            return ask
        cursor = result.cursor


def describe(ask: RetryAsk) -> str:
    return "every file that did not load" if ask.every_file else ", ".join(sorted(ask.names))
