"""Quoting for SQL text built from user input: every identifier and literal goes through here;
and what a user's SQL expression refers to, read from DuckDB's parse tree."""

import json
from functools import cache


def quote(identifier: str) -> str:
    """A safely quoted SQL identifier: a column or table name from a file header cannot inject SQL."""
    if "\x00" in identifier:
        raise ValueError("identifier contains a NUL byte")
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


def literal(value: str) -> str:
    """A safely quoted SQL string literal."""
    if "\x00" in value:
        raise ValueError("string contains a NUL byte")
    return "'" + value.replace("'", "''") + "'"


@cache
def _parser():
    import duckdb

    return duckdb.connect(":memory:")


@cache
def expression_references(expression: str, *, with_value: bool = False) -> tuple[str, ...]:
    """The column names a SQL expression refers to, in order of first mention, from DuckDB's parse
    tree (no binding: no table is needed). Lambda parameters are not columns; ``value`` (a column
    expression's own source value) is left out unless ``with_value``. A name the expression
    qualifies (``t.x``) counts by its last part."""
    tree = json.loads(
        _parser().cursor().execute("SELECT json_serialize_sql(?)", [f"SELECT {expression}"]).fetchone()[0]
    )
    if tree.get("error"):
        raise ValueError(tree.get("error_message", "cannot parse the expression"))
    found: list[str] = []
    lambda_params: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("class") == "LAMBDA":
                lhs = node.get("lhs") or {}
                for ref in _column_refs(lhs):
                    lambda_params.add(ref)
            if node.get("class") == "COLUMN_REF" and node.get("column_names"):
                found.append(node["column_names"][-1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    names = [n for n in dict.fromkeys(found) if n not in lambda_params]
    return tuple(n for n in names if with_value or n != "value")


def _column_refs(node) -> list[str]:
    refs: list[str] = []
    if isinstance(node, dict):
        if node.get("class") == "COLUMN_REF" and node.get("column_names"):
            refs.append(node["column_names"][-1])
        for value in node.values():
            refs += _column_refs(value)
    elif isinstance(node, list):
        for value in node:
            refs += _column_refs(value)
    return refs


_JSON_STRING = r'"(?:[^"\\]|\\.)*"'  # a JSON string, escapes included
# What DuckDB's JSON parser lets through and JSON does not, outside strings: NaN, Infinity (any
# case) and a comma with nothing after it, or before it.
_JSON_LENIENT = r"(?i)(nan|inf)|,\s*[\]}]|[\[{,]\s*,"


def json_lenient(text: str) -> str:
    """SQL: true when JSON text that DuckDB parsed is not valid JSON (NaN, a trailing comma)."""
    outside_strings = f"regexp_replace({text}, {literal(_JSON_STRING)}, '\"\"', 'g')"
    return f"regexp_matches({outside_strings}, {literal(_JSON_LENIENT)})"
