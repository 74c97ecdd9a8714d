"""Mapping, casting and row rules, compiled to DuckDB SQL.

Nothing here touches data: these functions turn a spec into SQL fragments that
the ingest step runs inside DuckDB, where all rows are processed in parallel batches.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from etl_platform.spec import ColumnSpec, PipelineSpec, RuleSpec
from etl_platform.sql import literal, quote

CAST_ERRORS = "__cast_errors"
RAW_RECORD = "__raw_record"
# A file format may deliver this column beside the data: NULL for a sound row, else the reason
# the reader could not give the row's values (an .xlsx formula without a saved result, ...).
# The row is rejected with that reason, like a value that does not convert.
ROW_ERRORS = "__etl_row_errors"
LINEAGE_COLUMNS = {"_source_file": "VARCHAR", "_load_id": "VARCHAR"}


@dataclass(frozen=True)
class Rule:
    """A compiled row rule: ``fails`` is a SQL predicate, true exactly when the row breaks it."""

    reason: str
    fails: str


def _parsed_value(name: str, col: ColumnSpec) -> str:
    """SQL producing the typed value of a column the reader delivered as text (or untyped)."""
    raw = f"{quote(col.source or name)}::VARCHAR"
    value = f"__expr_{name}({raw})" if col.expression else raw
    target = col.duckdb_type
    if col.format and target in ("DATE", "TIMESTAMP", "TIMESTAMPTZ"):
        return f"try_strptime({value}, {literal(col.format)})::{target}"
    return f"TRY_CAST({value} AS {target})"


def macros(columns: dict[str, ColumnSpec]) -> list[str]:
    """Temporary macros for column expressions, so ``value`` is bound properly rather than by text substitution."""
    return [
        f"CREATE OR REPLACE TEMP MACRO __expr_{name}(value) AS ({col.expression})"
        for name, col in columns.items()
        if col.expression
    ]


def select_list(
    columns: dict[str, ColumnSpec], *, reader_casts: bool, lineage: dict[str, str], passthrough: frozenset[str] = frozenset(),
    row_errors: bool = False,
) -> str:
    """The SELECT list that maps one scanned file onto the stage table.

    ``reader_casts`` says the file reader already cast plain typed columns (CSV);
    other columns are cast here, and any value that does not convert is recorded in
    ``__cast_errors`` with the column, the raw value and the target type. Columns in
    ``passthrough`` already have their target type (a typed source) and are taken as they are.
    With ``row_errors`` the scan has a ``ROW_ERRORS`` column whose reasons reject their rows.
    """
    exprs, checks = [], []
    for name, col in columns.items():
        if (reader_casts and not col.parsed_in_sql) or name in passthrough:
            exprs.append(f"{quote(col.source or name)} AS {quote(name)}")
            continue
        parsed = _parsed_value(name, col)
        raw = f"{quote(col.source or name)}::VARCHAR"
        exprs.append(f"{parsed} AS {quote(name)}")
        checks.append(f"CASE WHEN {raw} IS NOT NULL AND {parsed} IS NULL THEN {literal(cast_reason(name, col))} END")
    exprs += [f"{literal(value)} AS {quote(name)}" for name, value in lineage.items()]
    if row_errors:
        checks.append(f"{quote(ROW_ERRORS)}::VARCHAR")
    if checks:
        any_failed = " OR ".join(f"({c}) IS NOT NULL" for c in checks)
        # The raw text is kept only for rows that fail, so a rejected row shows what the file said.
        raw_record = ", ".join(f"{literal(col.source or name)}: {quote(col.source or name)}::VARCHAR" for name, col in columns.items())
        exprs.append(
            f"CASE WHEN {any_failed} THEN list_filter([{', '.join(checks)}], lambda e: e IS NOT NULL) END AS {CAST_ERRORS}"
        )
        exprs.append(f"CASE WHEN {any_failed} THEN to_json({{{raw_record}}})::VARCHAR END AS {RAW_RECORD}")
    return ", ".join(exprs)


def cast_reason(name: str, col: ColumnSpec) -> str:
    """Rejection reason for a value that does not convert. It names the column and type, never the value."""
    return f"{name}: not a valid {col.type}" + (f" in format {col.format}" if col.format else "")


def needs_cast_errors(
    columns: dict[str, ColumnSpec], *, reader_casts: bool, passthrough: frozenset[str] = frozenset(), row_errors: bool = False
) -> bool:
    return row_errors or any(name not in passthrough and (col.parsed_in_sql or not reader_casts) for name, col in columns.items())


def stage_columns(spec: PipelineSpec, *, with_cast_errors: bool) -> list[tuple[str, str]]:
    cols = [(name, col.duckdb_type) for name, col in spec.source.columns.items()]
    if spec.destination.lineage_columns:
        cols += list(LINEAGE_COLUMNS.items())
    if with_cast_errors:
        cols += [(CAST_ERRORS, "VARCHAR[]"), (RAW_RECORD, "VARCHAR")]
    return cols


def _compile(rule: RuleSpec) -> list[Rule]:
    if rule.not_null is not None:
        return [Rule(rule.name or f"{c} is missing", f"{quote(c)} IS NULL") for c in rule.not_null]
    if rule.accepted_values is not None:
        av = rule.accepted_values
        values = ", ".join(literal(str(v)) for v in av.values)
        shown = ", ".join(str(v) for v in av.values)
        return [Rule(rule.name or f"{av.column} not in [{shown}]", f"coalesce({quote(av.column)}::VARCHAR NOT IN ({values}), false)")]
    if rule.regex is not None:
        rx = rule.regex
        return [
            Rule(
                rule.name or f"{rx.column} does not match {rx.pattern}",
                f"coalesce(NOT regexp_full_match({quote(rx.column)}::VARCHAR, {literal(rx.pattern)}), false)",
            )
        ]
    assert rule.check is not None
    return [Rule(rule.name or f"failed: {rule.check}", f"NOT coalesce(({rule.check}), true)")]


def compile_rules(spec: PipelineSpec) -> list[Rule]:
    """All row rules of a pipeline, including the implicit ones: a merge or incremental
    load needs its key and cursor present."""
    rules = [r for rule in spec.rules for r in _compile(rule)]
    implicit = list(spec.sync.primary_key) if spec.sync.mode in ("merge", "incremental") else []
    if spec.sync.mode == "incremental" and spec.sync.cursor:
        implicit.append(spec.sync.cursor)
    for col in dict.fromkeys(implicit):
        rules.append(Rule(f"{col} is missing (needed by sync)", f"{quote(col)} IS NULL"))
    return rules


def any_fails(rules: Sequence[Rule], *, with_cast_errors: bool) -> str:
    parts = [r.fails for r in rules]
    if with_cast_errors:
        parts.append(f"{CAST_ERRORS} IS NOT NULL")
    return " OR ".join(f"({p})" for p in parts) if parts else "false"


def reasons(rules: Sequence[Rule], *, with_cast_errors: bool) -> str:
    """SQL for the list of every reason a (failing) row was rejected."""
    listed = ", ".join(f"CASE WHEN {r.fails} THEN {literal(r.reason)} END" for r in rules)
    expr = f"list_filter([{listed}], lambda e: e IS NOT NULL)" if rules else "[]::VARCHAR[]"
    if with_cast_errors:
        expr = f"coalesce({CAST_ERRORS}, []::VARCHAR[]) || {expr}"
    return expr
