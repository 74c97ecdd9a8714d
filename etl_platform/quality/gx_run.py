"""Run a table's expectations with Great Expectations; plain functions, no Dagster.

Great Expectations is imported here, inside the step, never when definitions load: its
import costs seconds. A table of up to ``max_rows`` rows is handed to GX whole; a larger
one is answered by DuckDB aggregates where the expectation allows (see ``pushdown``) and
by GX on a repeatable random sample otherwise, and each result says which it was.
"""

import os
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from etl_platform import settings
from etl_platform.errors import first_line
from etl_platform.quality.expectations import Expectation
from etl_platform.quality.pushdown import PUSHDOWN, can_push_down
from etl_platform.secrets.references import scrub
from etl_platform.sql import qualified, quote

DEFAULT_MAX_ROWS = 100_000
EXAMPLES_SHOWN = 5
HIDDEN = "hidden: sensitive column"
# Result keys that carry counts and shares only: all a sensitive column's results keep.
_COUNTS = (
    "element_count",
    "missing_count",
    "missing_percent",
    "unexpected_count",
    "unexpected_percent",
    "unexpected_percent_total",
    "unexpected_percent_nonmissing",
)


def max_rows_in_memory() -> int:
    """Rows up to which a table is validated whole in memory (ETL_GX_MAX_ROWS)."""
    return int(os.environ.get("ETL_GX_MAX_ROWS", DEFAULT_MAX_ROWS))


def data_docs_dir() -> Path:
    return settings.etl_home() / "gx" / "data_docs"


@dataclass
class Outcome:
    """One expectation's verdict and what the check shows about it."""

    check_name: str
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    docs: Path | None = None


def _plain(value: Any) -> Any:
    """A JSON-able form of a value GX or DuckDB returned (numpy numbers, decimals, dates)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@cache
def _context(docs: Path):
    """An ephemeral GX context whose data docs are written under ETL_HOME (one per process)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    context.add_data_docs_site(
        "etl",
        {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    context.data_sources.add_pandas("warehouse")
    return context


def _columns_needed(expectations: list[Expectation]) -> str:
    """Only the columns the expectations read reach pandas; a table-level one sees them all."""
    if any(exp.family == "table" for exp in expectations):
        return "*"
    return ", ".join(quote(c) for c in dict.fromkeys(c for exp in expectations for c in exp.columns))


def _gx_expectation(exp: Expectation):
    from great_expectations.expectations.registry import get_expectation_impl

    return get_expectation_impl(exp.type)(**exp.kwargs)


def _sanitised(exp: Expectation, result: dict) -> dict:
    return {k: v for k, v in result.items() if k in _COUNTS} if exp.sensitive else result


def validate_table(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    expectations: list[Expectation],
    *,
    run_id: str,
    max_rows: int | None = None,
) -> list[Outcome]:
    """Validate ``schema.table`` against ``expectations``; one Outcome per expectation, same order.
    GX's results (without sensitive values) are kept in the data docs under ETL_HOME."""
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    max_rows = max_rows_in_memory() if max_rows is None else max_rows
    table_sql = qualified(schema, table)
    rows = con.execute(f"SELECT count(*) FROM {table_sql}").fetchone()[0]
    large = rows > max_rows
    context = _context(data_docs_dir())
    results: dict[str, Any] = {}
    evaluated: dict[str, tuple[str, str]] = {}
    in_gx: list[Expectation] = []
    for exp in expectations:
        if large and can_push_down(exp.type, exp.kwargs):
            try:
                success, result = PUSHDOWN[exp.type](con, table_sql, exp.kwargs)
            except duckdb.Error as err:
                success, result = False, {"error": first_line(err)}
            results[exp.check_name] = ExpectationValidationResult(
                success=success,
                expectation_config=_gx_expectation(exp).configuration,
                result=_sanitised(exp, _plain(result)),
            )
            evaluated[exp.check_name] = (f"full table ({rows:,} rows)", "duckdb aggregates")
        else:
            in_gx.append(exp)
    errors: dict[str, str] = {}
    if in_gx:
        sample = f" USING SAMPLE reservoir({max_rows} ROWS) REPEATABLE (42)" if large else ""
        frame = con.execute(f"SELECT {_columns_needed(in_gx)} FROM {table_sql}{sample}").df()
        on = f"sample of {len(frame):,} rows" if large else f"full table ({rows:,} rows)"
        asset = context.data_sources.get("warehouse").add_dataframe_asset(
            f"{schema}.{table}.{len(results)}.{id(frame)}"
        )
        batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": frame})
        for exp in in_gx:
            evaluated[exp.check_name] = (on, "great_expectations")
            try:
                gx_exp = _gx_expectation(exp)
            except Exception as err:  # GX refused the arguments: the check fails with why
                errors[exp.check_name] = f"invalid arguments: {err}"
                continue
            # A sensitive column's counts are kept and its values never collected.
            fmt = {"result_format": "SUMMARY", "partial_unexpected_count": 0 if exp.sensitive else 20}
            result = batch.validate(gx_exp, result_format=fmt)
            if result.exception_info and result.exception_info.get("raised_exception"):
                errors[exp.check_name] = (
                    result.exception_info.get("exception_message") or "the expectation raised an error"
                )
            result.result = _sanitised(exp, result.result or {})
            results[exp.check_name] = result

    suite = f"{schema}.{table}"
    key = ValidationResultIdentifier(
        ExpectationSuiteIdentifier(name=suite), RunIdentifier(run_name=run_id), f"{schema}.{table}"
    )
    ordered = [results[e.check_name] for e in expectations if e.check_name in results]
    context.validation_results_store.set(
        key,
        ExpectationSuiteValidationResult(
            success=all(r.success for r in ordered),
            results=ordered,
            suite_name=suite,
            statistics={
                "evaluated_expectations": len(ordered),
                "successful_expectations": sum(r.success for r in ordered),
            },
        ),
    )
    context.build_data_docs(site_names=["etl"], resource_identifiers=[key])
    urls = [
        u["site_url"]
        for u in context.get_docs_sites_urls(resource_identifier=key, site_name="etl")
        if u.get("site_url")
    ]
    docs = Path(urls[0].removeprefix("file://")) if urls else None
    return [
        _outcome(exp, results.get(exp.check_name), errors.get(exp.check_name), evaluated[exp.check_name], docs)
        for exp in expectations
    ]


def _outcome(exp: Expectation, result, error: str | None, evaluated: tuple[str, str], docs: Path | None) -> Outcome:
    on, engine = evaluated
    metadata: dict[str, Any] = {
        "expectation": exp.type,
        "arguments": _plain(exp.kwargs),
        "evaluated_on": on,
        "evaluated_by": engine,
    }
    if error is not None or result is None:
        metadata["error"] = scrub(error or "not evaluated")
        return Outcome(exp.check_name, False, metadata, docs)
    found = _plain(result.result or {})
    if exp.sensitive:
        metadata["observed_value"] = HIDDEN
    elif "observed_value" in found:
        metadata["observed_value"] = found["observed_value"]
    for key in ("element_count", "unexpected_count", "missing_count"):
        if key in found:
            metadata[key] = found[key]
    if found.get("unexpected_percent") is not None:
        metadata["unexpected_percent"] = round(found["unexpected_percent"], 4)
    if "partial_unexpected_list" in found and not exp.sensitive:
        metadata["unexpected_examples"] = found["partial_unexpected_list"][:EXAMPLES_SHOWN]
    return Outcome(exp.check_name, bool(result.success), metadata, docs)
