"""Expectations answered by one DuckDB aggregate over the whole table, for tables too large
to hand to Great Expectations in memory. Each returns what GX would: success and a result
with the same keys (element_count, unexpected_count, unexpected_percent, observed_value,
partial_unexpected_list), so the check's metadata and the data docs read the same."""

from collections.abc import Callable
from typing import Any

import duckdb

from etl_platform.sql import literal, quote

EXAMPLES = 20  # unexpected values kept, as GX's partial_unexpected_list


def _value_sql(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return literal(str(value))


def _column_map(con, table: str, kwargs: dict, unexpected: str, *, nulls_unexpected: bool = False) -> tuple[bool, dict]:
    """A per-value expectation: ``unexpected`` is a predicate on non-null values of ``column``."""
    col = quote(kwargs["column"])
    total, missing, bad = con.execute(
        f"SELECT count(*), count(*) - count({col}), count(*) FILTER (WHERE {col} IS NOT NULL AND ({unexpected})) FROM "
        f"{table}"
    ).fetchone()
    if nulls_unexpected:
        bad, denominator = missing, total
        examples: list = [None] * min(missing, EXAMPLES)
    else:
        denominator = total - missing
        rows = con.execute(
            f"SELECT {col} FROM {table} WHERE {col} IS NOT NULL AND ({unexpected}) LIMIT {EXAMPLES}"
        ).fetchall()
        examples = [r[0] for r in rows]
    share = bad / denominator if denominator else 0.0
    result = {
        "element_count": total,
        "missing_count": missing,
        "missing_percent": 100.0 * missing / total if total else None,
        "unexpected_count": bad,
        "unexpected_percent": 100.0 * share if denominator else None,
        "partial_unexpected_list": examples,
    }
    return 1.0 - share >= kwargs.get("mostly", 1.0), result


def _bounds(value: str, kwargs: dict) -> str:
    parts = []
    if kwargs.get("min_value") is not None:
        parts.append(f"{value} {'<=' if kwargs.get('strict_min') else '<'} {_value_sql(kwargs['min_value'])}")
    if kwargs.get("max_value") is not None:
        parts.append(f"{value} {'>=' if kwargs.get('strict_max') else '>'} {_value_sql(kwargs['max_value'])}")
    return " OR ".join(parts) or "false"


def _aggregate(function: str) -> Callable:
    def evaluate(con, table: str, kwargs: dict) -> tuple[bool, dict]:
        observed = con.execute(f"SELECT {function}({quote(kwargs['column'])}) FROM {table}").fetchone()[0]
        if observed is None:
            return False, {"observed_value": None}
        outside = con.execute(f"SELECT {_bounds('?', kwargs)}", [observed]).fetchone()[0]
        return not outside, {"observed_value": observed}

    return evaluate


def _row_count(con, table: str, kwargs: dict) -> tuple[bool, dict]:
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if "value" in kwargs:
        return rows == kwargs["value"], {"observed_value": rows}
    return not con.execute(f"SELECT {_bounds('?', kwargs)}", [rows]).fetchone()[0], {"observed_value": rows}


def _in_set(con, table, kwargs):
    values = ", ".join(_value_sql(v) for v in kwargs["value_set"])
    return _column_map(con, table, kwargs, f"{quote(kwargs['column'])} NOT IN ({values})")


def _not_in_set(con, table, kwargs):
    values = ", ".join(_value_sql(v) for v in kwargs["value_set"])
    return _column_map(con, table, kwargs, f"{quote(kwargs['column'])} IN ({values})")


def _unique(con, table, kwargs):
    col = quote(kwargs["column"])
    repeated = f"{col} IN (SELECT {col} FROM {table} WHERE {col} IS NOT NULL GROUP BY ALL HAVING count(*) > 1)"
    return _column_map(con, table, kwargs, repeated)


PUSHDOWN: dict[str, Callable[[duckdb.DuckDBPyConnection, str, dict], tuple[bool, dict]]] = {
    "expect_column_values_to_not_be_null": lambda con, t, kw: _column_map(con, t, kw, "false", nulls_unexpected=True),
    "expect_column_values_to_be_between": lambda con, t, kw: _column_map(con, t, kw, _bounds(quote(kw["column"]), kw)),
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_not_be_in_set": _not_in_set,
    "expect_column_values_to_be_unique": _unique,
    "expect_table_row_count_to_be_between": _row_count,
    "expect_table_row_count_to_equal": _row_count,
    "expect_column_min_to_be_between": _aggregate("min"),
    "expect_column_max_to_be_between": _aggregate("max"),
    "expect_column_mean_to_be_between": _aggregate("avg"),
    "expect_column_sum_to_be_between": _aggregate("sum"),
}


def can_push_down(expectation_type: str, kwargs: dict) -> bool:
    """Whether DuckDB answers this expectation exactly (a row_condition is GX's own language)."""
    return expectation_type in PUSHDOWN and "row_condition" not in kwargs
