"""One pipeline spec -> its whole slice of definitions: assets, checks, job, schedule."""

import dataclasses
import datetime
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path

import dagster as dg

from etl_platform.automation.pipeline import pipeline_automation
from etl_platform.automation.retries import failure_for, failures_classified, retry_policy
from etl_platform.connectors.connections import resource_key
from etl_platform.connectors.formats.base import format_class
from etl_platform.connectors.landing import LANDING, landing_connector
from etl_platform.connectors.registry import ConnectorError, connector_class
from etl_platform.destinations.base import DestinationError
from etl_platform.destinations.registry import destination_class, destination_for
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.factory.load_results import (
    CHECK_FILES_READABLE,
    CHECK_REJECTED_SHARE,
    CHECK_SCHEMA_DRIFT,
    load_results,
    refused_results,
    schema_of,
)
from etl_platform.ml.assets import build_train_defs
from etl_platform.partitions import runs as partition_runs
from etl_platform.partitions.definitions import backfill_policy, partitioned_schedule, partitions_definition
from etl_platform.quality.checks import expectation_checks
from etl_platform.quality.expectations import Expectation
from etl_platform.resources.warehouse import WAREHOUSE_POOL, WarehouseResource
from etl_platform.secrets.references import MissingSecret
from etl_platform.spec.automation import FreshnessSpec
from etl_platform.spec.pipeline import PipelineSpec, TransformSpec
from etl_platform.spec.tables import TableNames, transform_references
from etl_platform.steps import extract, load_result, load_target, transform
from etl_platform.steps.stage import LINEAGE_COLUMNS

DEFINED_AT = "etl/defined_at"

REJECTED_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("run_id", "VARCHAR", description="Dagster run that rejected the row."),
        dg.TableColumn("source_file", "VARCHAR", description="File the row came from, relative to the landing folder."),
        dg.TableColumn(
            "source_line",
            "BIGINT",
            description="Line the row starts on in its file (for a JSON array the element's number, for a workbook the "
            "sheet's row); empty when the whole file was rejected.",
        ),
        dg.TableColumn(
            "kind",
            "VARCHAR",
            description="'rule' (a row rule or a value that does not convert exactly), 'parse' (the line could not be "
            "parsed), 'file' (the whole file), or 'superseded' (a merge row a later row with the same key "
            "replaced in the same load; its reason names that row).",
        ),
        dg.TableColumn("reasons", "VARCHAR[]", description="Every rule the row broke."),
        dg.TableColumn(
            "record",
            "VARCHAR",
            description="The row as read: JSON of its values, or the raw line when it could not be parsed.",
        ),
        dg.TableColumn("rejected_at", "TIMESTAMPTZ"),
    ]
)


@dataclass(frozen=True)
class PipelineContext:
    """What the factory needs besides the spec: the pipeline's name, tables and where it was declared."""

    name: str
    names: TableNames
    defined_at: dict[str, str]  # field path -> "file:line", for code references and late errors
    connection_kind: str = "local"
    destination_kind: str | None = None  # the destination connection's kind; None for the warehouse
    expectations: tuple[Expectation, ...] = ()  # Great Expectations checks, resolved and checked at load


def _key(schema: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([schema, table])


def _declared_schema(spec: PipelineSpec) -> dg.TableSchema:
    columns = [
        dg.TableColumn(name, col.duckdb_type, description=col.description or f"from '{col.source or name}'")
        for name, col in spec.source.columns.items()
    ]
    if spec.destination.lineage_columns:
        columns += [
            dg.TableColumn(
                "_source_file", LINEAGE_COLUMNS["_source_file"], description="File the row was loaded from."
            ),
            dg.TableColumn("_load_id", LINEAGE_COLUMNS["_load_id"], description="Dagster run that loaded the row."),
        ]
    return dg.TableSchema(columns=columns)


def transform_dependencies(t: TransformSpec, schema: str) -> list[dg.AssetKey]:
    deps = []
    for ref in sorted(transform_references(t.sql)):
        parts = ref.split(".")
        deps.append(_key(schema, parts[0]) if len(parts) == 1 else _key(parts[0], parts[1]))
    return deps


def build_pipeline_defs(spec: PipelineSpec, ctx: PipelineContext) -> dg.Definitions:
    names = ctx.names
    source_key = dg.AssetKey([ctx.name, "source_files" if spec.source.reads == "files" else "source"])
    table_key, rejected_key = _key(names.schema, names.table), _key(names.schema, names.rejected)
    group = ctx.name
    owners = list(spec.owners)

    source = dg.AssetSpec(
        key=source_key,
        description=_source_description(spec),
        group_name=group,
        kinds=_source_kinds(spec, ctx.connection_kind),
        owners=owners,
        metadata={"source": spec.source.label, "connection": spec.source.connection},
    )
    connection_key = None if spec.source.connection == LANDING else resource_key(spec.source.connection)
    dest = spec.destination
    destination_key = None if ctx.destination_kind is None else resource_key(dest.connection)
    resource_keys = {"warehouse"} | {k for k in (connection_key, destination_key) if k}
    check_specs = [
        dg.AssetCheckSpec(
            CHECK_REJECTED_SHARE,
            asset=table_key,
            blocking=spec.checks.blocking,
            description=f"At most {spec.checks.max_rejected_fraction:.1%} of the rows read are rejected.",
        ),
        dg.AssetCheckSpec(CHECK_FILES_READABLE, asset=table_key, description="No file was rejected whole."),
        dg.AssetCheckSpec(
            CHECK_SCHEMA_DRIFT,
            asset=table_key,
            description="The load's columns match the table's; a difference is shown and handled by schema_changes "
            f"({spec.destination.schema_changes}).",
        ),
    ]

    partitions_def = partitions_definition(spec.partitions, ctx.name) if spec.partitions else None

    @dg.multi_asset(
        name=f"{ctx.name}__load",
        specs=[
            dg.AssetSpec(
                key=table_key,
                deps=[source_key],
                description=spec.description or f"Rows loaded from '{spec.source.label}'.",
                group_name=group,
                kinds=_destination_kinds(ctx.destination_kind, dest.format),
                owners=owners,
                freshness_policy=_freshness_policy(spec.freshness),
                metadata={
                    "dagster/column_schema": _declared_schema(spec),
                    "dagster/table_name": f"{names.schema}.{names.table}",
                    "destination": dest.connection,
                    "sync_mode": spec.sync.mode,
                },
            ),
            dg.AssetSpec(
                key=rejected_key,
                deps=[source_key],
                description=f"Rows of {names.table} that broke a rule or could not be read, with the reasons, file, "
                "line and run.",
                group_name=group,
                kinds={"duckdb"},
                owners=owners,
                metadata={
                    "dagster/column_schema": REJECTED_SCHEMA,
                    "dagster/table_name": f"{names.schema}.{names.rejected}",
                },
            ),
        ],
        check_specs=check_specs,
        pool=WAREHOUSE_POOL,
        can_subset=False,
        required_resource_keys=resource_keys,
        retry_policy=retry_policy(spec.retries.max_retries, spec.retries.delay_seconds),
        partitions_def=partitions_def,
        backfill_policy=backfill_policy(spec.partitions) if spec.partitions else None,
    )
    def load_rows(context: dg.AssetExecutionContext):
        warehouse: WarehouseResource = context.resources.warehouse
        connector = getattr(context.resources, connection_key).connector() if connection_key else landing_connector()
        destination = destination_for(
            ctx.destination_kind,
            getattr(context.resources, destination_key).connector() if destination_key else None,
            names.schema,
            names.table,
            file_format=dest.format,
            partition_by=dest.partition_by,
        )
        target = load_target.Target(
            TableRef(names.schema, names.table), TableRef(names.schema, names.rejected), destination
        )
        part = partition_runs.slice_of_run(context, spec.partitions) if spec.partitions else None
        if part:  # the load replaces this partition's rows only
            target = dataclasses.replace(target, destination=partition_runs.SliceOf(target.committer, part))
        with failures_classified(), warehouse.get_connection() as con:
            try:
                result = extract.load_source(
                    partition_runs.spec_for_run(spec, part),
                    pipeline=ctx.name,
                    connector=connector,
                    con=con,
                    target=target,
                    run_id=context.run.run_id,
                    log=context.log.info,
                )
            except warehouse_tables.SchemaMismatch as err:  # the message is the cause's own: nothing more to show
                raise dg.Failure(
                    str(err), metadata={"schema_changes": dest.schema_changes}, allow_retries=False
                ) from None
            except load_result.NothingToReplace as err:
                # The table keeps its rows; what was rejected is recorded and shown, and the run fails.
                rejected_total = con.execute(f"SELECT count(*) FROM {target.rejected.sql}").fetchone()[0]
                yield from refused_results(spec, err.result, table_key, rejected_key, rejected_total)
                raise failure_for(err) from None  # its message, said again: nothing more to show
            except (load_result.LoadFailed, ConnectorError, DestinationError, MissingSecret) as err:
                # its message is scrubbed here, not what it was raised during (a driver's error): dropped, codes kept
                raise failure_for(err) from None
            rejected_total = con.execute(f"SELECT count(*) FROM {target.rejected.sql}").fetchone()[0]
        extra = partition_runs.partition_metadata(part, result.committed) if part else {}
        yield from load_results(spec, result, table_key, rejected_key, rejected_total, extra)

    assets = [load_rows, _transforms_asset(spec, ctx)] if spec.transforms else [load_rows]
    job = dg.define_asset_job(
        f"{ctx.name}_job",
        selection=dg.AssetSelection.assets(*[k for a in assets for k in a.keys]),
        description=f"Load and build everything of pipeline {ctx.name}.",
    )
    schedules = []
    if spec.triggers.cron and spec.partitions:  # the latest complete time partition, at the cron's time
        schedules.append(
            partitioned_schedule(
                partitions_def,
                job,
                name=f"{ctx.name}_schedule",
                cron=spec.triggers.cron,
                timezone=spec.triggers.timezone,
                start_running=spec.triggers.start_running,
            )
        )
    elif spec.triggers.cron:
        schedules.append(
            dg.ScheduleDefinition(
                name=f"{ctx.name}_schedule",
                cron_schedule=spec.triggers.cron,
                execution_timezone=spec.triggers.timezone,
                job=job,
                default_status=dg.DefaultScheduleStatus.RUNNING
                if spec.triggers.start_running
                else dg.DefaultScheduleStatus.STOPPED,
            )
        )
    # An AssetsDefinition of its own: Definitions would otherwise fold every bare AssetSpec of
    # the code location into one definition, and each job's graph would carry all of them.
    source_def = dg.AssetsDefinition(specs=[source])
    slice_ = dg.Definitions(assets=[source_def, *assets], jobs=[job], schedules=schedules)
    ml = (
        [build_train_defs(spec, ctx.name, ctx.names)] if spec.train else []
    )  # features, model, champion, predictions, train job
    quality = [expectation_checks(ctx.expectations, names.schema, ctx.name)] if ctx.expectations else []
    return dg.Definitions.merge(slice_, pipeline_automation(spec, ctx.name, job, table_key), *ml, *quality)


def _freshness_policy(freshness: FreshnessSpec | None) -> dg.FreshnessPolicy | None:
    """The table's freshness policy (a time window since its last load), evaluated by the daemon."""
    if freshness is None:
        return None
    warn = None if freshness.warn_after_hours is None else datetime.timedelta(hours=freshness.warn_after_hours)
    return dg.FreshnessPolicy.time_window(
        fail_window=datetime.timedelta(hours=freshness.max_age_hours), warn_window=warn
    )


def _source_kinds(spec: PipelineSpec, connection_kind: str) -> set[str]:
    """The kinds (icons) of a source asset: the file format and where the files are, or the connection's."""
    if spec.source.reads == "files":
        return {"file", format_class(spec.source.file_format).asset_kind, *({"s3"} if connection_kind == "s3" else ())}
    return set(connector_class(connection_kind).asset_kinds or {connection_kind})


def _destination_kinds(connection_kind: str | None, file_format: str | None) -> set[str]:
    return destination_class(connection_kind).asset_kinds(connection_kind, file_format)


def _source_description(spec: PipelineSpec) -> str:
    src = spec.source
    if src.reads == "files":
        where = "the landing folder (ETL_LANDING_DIR)" if src.connection == LANDING else f"connection {src.connection}"
        return f"Files matching '{src.files}' in {where}."
    if src.table is not None:
        return f"Table {src.table} of connection {src.connection}."
    if src.query is not None:
        return f"A query on connection {src.connection}:\n\n```sql\n{src.query.strip()}\n```"
    return f"Endpoint {src.label} of connection {src.connection}."


def _transforms_asset(spec: PipelineSpec, ctx: PipelineContext) -> dg.AssetsDefinition:
    """Every SQL transform of the pipeline as one subsettable step: the selected transforms
    are built in dependency order on one warehouse connection, each its own asset with its
    own materialization. One step per pipeline instead of one per transform keeps runs short
    and keeps Dagster's per-definition bookkeeping flat when there are hundreds of pipelines."""
    schema = ctx.names.schema
    by_key = {_key(schema, t.name): t for t in spec.transforms}
    order = _build_order(spec.transforms, schema)
    specs = [
        dg.AssetSpec(
            key=key,
            deps=transform_dependencies(t, schema),
            description=t.description or f"SQL model built from {', '.join(sorted(transform_references(t.sql)))}.",
            group_name=ctx.name,
            kinds={"duckdb", "sql"},
            owners=list(spec.owners),
            skippable=True,
            metadata={
                "sql": dg.MetadataValue.md(f"```sql\n{t.sql.strip()}\n```"),
                "dagster/table_name": f"{schema}.{t.name}",
                DEFINED_AT: ctx.defined_at.get(f"transforms.{i}.sql", ""),
                **_code_reference(
                    ctx.defined_at.get(f"transforms.{i}.sql", ""), f"{t.name} (SQL in the pipeline file)"
                ),
            },
        )
        for i, (key, t) in enumerate(by_key.items())
    ]

    @dg.multi_asset(
        name=f"{ctx.name}__transforms",
        specs=specs,
        can_subset=True,
        pool=WAREHOUSE_POOL,
        retry_policy=retry_policy(spec.retries.max_retries, spec.retries.delay_seconds),
    )
    def build(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        selected = context.selected_asset_keys
        with failures_classified(), warehouse.get_connection() as con:
            for key in order:
                if key not in selected:
                    continue
                t = by_key[key]
                built = transform.build(con, schema=schema, name=t.name, sql=t.sql)
                context.log.info(f"built {schema}.{t.name}: {built.rows:,} rows in {built.seconds:.2f}s")
                yield dg.MaterializeResult(
                    asset_key=key,
                    metadata={
                        "dagster/row_count": built.rows,
                        "dagster/column_schema": schema_of(built.columns),
                        "duration_seconds": round(built.seconds, 3),
                    },
                )

    return build


def _code_reference(defined_at: str, label: str) -> dict:
    """The UI's "open in editor" link to a line of a pipeline file ("file:line"), or nothing."""
    file, _, line = defined_at.rpartition(":")
    if not file or not line.isdigit():
        return {}
    reference = dg.LocalFileCodeReference(file_path=str(Path(file).resolve()), line_number=int(line), label=label)
    return {"dagster/code_references": dg.CodeReferencesMetadataValue(code_references=[reference])}


def _build_order(transforms: list[TransformSpec], schema: str) -> list[dg.AssetKey]:
    """Transform keys, each after the transforms of the same pipeline it reads."""
    own = {_key(schema, t.name) for t in transforms}
    graph = {_key(schema, t.name): [d for d in transform_dependencies(t, schema) if d in own] for t in transforms}
    return list(TopologicalSorter(graph).static_order())
