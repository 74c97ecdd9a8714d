"""A pipeline's expectations as Dagster asset checks: one check per expectation, one step
per checked table (so a blocking check on the loaded table can gate the transforms, and
checks on a transform run after it)."""

from collections import defaultdict

import dagster as dg

from etl_platform.quality.expectations import Expectation
from etl_platform.resources.warehouse import WAREHOUSE_POOL, WarehouseResource

DEFINED_AT = "etl/defined_at"


def _metadata(values: dict) -> dict:
    shown = {}
    for key, value in values.items():
        shown[key] = dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value
    return shown


def expectation_checks(expectations: tuple[Expectation, ...], schema: str, pipeline: str) -> dg.Definitions:
    """The asset checks of ``expectations``, grouped into one multi-asset check per table."""
    by_table: dict[str, list[Expectation]] = defaultdict(list)
    for exp in expectations:
        by_table[exp.table].append(exp)
    return dg.Definitions(
        asset_checks=[_table_checks(schema, table, items, pipeline) for table, items in by_table.items()]
    )


def _table_checks(schema: str, table: str, expectations: list[Expectation], pipeline: str) -> dg.AssetChecksDefinition:
    asset_key = dg.AssetKey([schema, table])
    specs = [
        dg.AssetCheckSpec(
            exp.check_name,
            asset=asset_key,
            blocking=exp.blocking,
            description=f"Great Expectations: {exp.describe()}" + (" (blocking)" if exp.blocking else ""),
            metadata={DEFINED_AT: exp.defined_at, "expectation": exp.type},
        )
        for exp in expectations
    ]
    by_name = {exp.check_name: exp for exp in expectations}

    @dg.multi_asset_check(
        name=f"{pipeline}__{table}__expectations",
        specs=specs,
        can_subset=True,
        pool=WAREHOUSE_POOL,
        description=f"Great Expectations checks on {schema}.{table}.",
    )
    def run_expectations(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        from etl_platform.quality.gx_run import validate_table

        selected = [by_name[key.name] for key in context.selected_asset_check_keys if key.name in by_name]
        selected.sort(key=expectations.index)
        with warehouse.get_connection() as con:
            outcomes = validate_table(con, schema, table, selected, run_id=context.run.run_id)
        for outcome in outcomes:
            exp = by_name[outcome.check_name]
            metadata = _metadata(outcome.metadata)
            if outcome.docs is not None:
                metadata["data_docs"] = dg.MetadataValue.url(outcome.docs.as_uri())
                metadata["data_docs_file"] = dg.MetadataValue.path(str(outcome.docs))
            yield dg.AssetCheckResult(
                asset_key=asset_key,
                check_name=outcome.check_name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR if exp.blocking else dg.AssetCheckSeverity.WARN,
                metadata=metadata,
            )

    return run_expectations
