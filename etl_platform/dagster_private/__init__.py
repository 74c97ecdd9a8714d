"""Every use of Dagster's private API, in one place.

Dagster's public API (``import dagster as dg``) is what the rest of the platform uses. What
follows reaches past it, each piece to work around a cost or a gap of Dagster 1.13 (written
against 1.13.27); each module says what it works around and what to check when Dagster is
upgraded:

- ``yaml_parser``: component files parsed by libyaml (Dagster parses them in pure Python).
- ``component_tree``: the defs folder built without the component catalogue, declarations
  looked up instead of listed again for each component.
- ``job_resolution``: asset jobs resolved against only the assets they touch.
- ``gc_freeze``: the objects a serving process built when loading, frozen for the collector.
- ``io_manager``: Dagster's default IO manager built on first use.
- ``run_records``: run statuses, tags and check-record statuses Dagster does not export.

``ETL_DAGSTER_SPEEDUPS=0`` turns every speed-up off (the plain Dagster path runs instead), to
tell a Dagster upgrade's breakage from ours; CI runs the definitions tests both ways.
``run_records`` is not a speed-up: its names are needed either way.
"""

import os


def speedups_enabled() -> bool:
    """False when ``ETL_DAGSTER_SPEEDUPS=0``: every workaround here steps aside."""
    return os.environ.get("ETL_DAGSTER_SPEEDUPS", "1") != "0"
