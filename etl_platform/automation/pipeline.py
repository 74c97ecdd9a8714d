"""A pipeline's automation, as the factory adds it: the file sensor with its check ``files_not_loaded``.
(A table's freshness is its Dagster freshness policy, set by the factory.)

Per-file partitions (``partitions: {by: file}``) are named ``<pipeline>_files``; when a
pipeline has them its file sensor asks for one run per file, otherwise one run per tick.
"""

import dagster as dg

from etl_platform.automation.file_retries import source_files_key
from etl_platform.automation.listing import FileListing, LocalListing, S3Listing
from etl_platform.automation.not_loaded import files_not_loaded_check
from etl_platform.automation.sensors import FileWatch, file_sensor
from etl_platform.connectors.connections import resource_key
from etl_platform.connectors.landing import LANDING, landing_folder
from etl_platform.partitions.definitions import files_partitions_name
from etl_platform.spec.pipeline import PipelineSpec


def per_file_partitions(spec: PipelineSpec, pipeline: str) -> str | None:
    """The name of the pipeline's per-file dynamic partitions, or None when it has none."""
    partitions = getattr(spec, "partitions", None)
    if partitions is None:
        return None
    if partitions.by != "file":
        raise dg.DagsterInvalidDefinitionError(
            f"pipeline {pipeline}: triggers.on_new_files runs a pipeline per new file or per batch of files; "
            f"it does not fit partitions by {partitions.by} (use triggers.cron, or partitions: {{by: file}})"
        )
    return files_partitions_name(pipeline)


def file_watch(spec: PipelineSpec, pipeline: str, table_key: dg.AssetKey | None = None) -> FileWatch:
    triggers = spec.triggers
    return FileWatch(
        pipeline=pipeline,
        pattern=spec.source.files or "",
        job_name=f"{pipeline}_job",
        partitions_def_name=per_file_partitions(spec, pipeline),
        settle_seconds=triggers.settle_seconds,
        max_files=triggers.max_files_per_tick,
        source_key=source_files_key(pipeline),
        table_key=table_key,
    )


def listing_of(connection: str):
    """A function giving, at tick time, the folder a connection's files are listed from."""
    if connection == LANDING:
        return lambda context: LocalListing(landing_folder())
    key = resource_key(connection)

    def listing(context: dg.SensorEvaluationContext) -> FileListing:
        connector = getattr(context.resources, key).connector()
        return S3Listing(connector) if connector.kind == "s3" else LocalListing(connector.folder())

    return listing


def pipeline_automation(spec: PipelineSpec, pipeline: str, job, table_key: dg.AssetKey) -> dg.Definitions:
    """The sensors and checks a pipeline's triggers ask for (its freshness is the table's policy)."""
    sensors, file_checks = [], []
    if spec.triggers.on_new_files and spec.source.reads == "files":
        connection = spec.source.connection
        watch = file_watch(spec, pipeline, table_key)
        file_checks.append(files_not_loaded_check(watch.source_key, watch.sensor_name))
        sensors.append(
            file_sensor(
                watch,
                listing_of(connection),
                job=job,
                minimum_interval_seconds=spec.triggers.min_interval_seconds,
                required_resource_keys=None if connection == LANDING else {resource_key(connection)},
            )
        )
    return dg.Definitions(sensors=sensors, asset_checks=file_checks)
