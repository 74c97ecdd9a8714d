"""Mapping, casting and row rules, compiled to DuckDB SQL.

Nothing here touches data: these functions turn a spec into SQL fragments that
the ingest step runs inside DuckDB, where all rows are processed in parallel batches."""

from collections.abc import Sequence
from dataclasses import dataclass

from etl_platform.connectors.reader_columns import ROW_ERRORS
from etl_platform.spec.columns import ColumnSpec
from etl_platform.spec.pipeline import PipelineSpec, RuleSpec
from etl_platform.sql import expression_references, literal, quote
from etl_platform.steps import casting

CAST_ERRORS = "__cast_errors"
RAW_RECORD = "__raw_record"
LINEAGE_COLUMNS = {"_source_file": "VARCHAR", "_load_id": "VARCHAR"}


@dataclass(frozen=True)
class Rule:
    """A compiled row rule: ``fails`` is a SQL predicate, true exactly when the row breaks it."""

    reason: str
    fails: str


def _macro(name: str) -> str:
    return quote(f"__expr_{name}")


def macros(columns: dict[str, ColumnSpec]) -> list[str]:
    """Temporary macros for column expressions: ``value`` and the source columns an expression
    names are its parameters, so they are bound properly rather than by text substitution."""
    made = []
    for name, col in columns.items():
        if col.expression:
            params = ", ".join(["value", *(quote(c) for c in expression_references(col.expression))])
            made.append(f"CREATE OR REPLACE TEMP MACRO {_macro(name)}({params}) AS ({col.expression})")
    return made


# An expression's NULL, told apart from an expression that failed (which ``try`` turns into NULL).
_NULL_RESULT = "chr(1) || 'null'"


def _raw(name: str, col: ColumnSpec) -> str:
    """The text a column converts: its source value as text, or what its expression makes of it.
    An expression that raises for a row (``make_date`` of February 30) gives NULL here, its
    NULL result gives ``_NULL_RESULT``: the row is rejected in the first case only."""
    value = f"{quote(col.source or name)}::VARCHAR" if col.reads_own_source else "NULL::VARCHAR"
    if not col.expression:
        return value
    args = ", ".join([value, *(quote(c) for c in expression_references(col.expression))])
    return f"try(coalesce({_macro(name)}({args})::VARCHAR, {_NULL_RESULT}))"


def mapping_query(
    columns: dict[str, ColumnSpec],
    scan: str,
    *,
    lineage: dict[str, str],
    passthrough: frozenset[str] = frozenset(),
    row_errors: bool = False,
    keep: dict[str, str] | None = None,
) -> str:
    """The SELECT that maps the rows of ``scan`` (a FROM item: one file's reader, a stream) onto
    the stage table's columns.

    Every column is converted from its text exactly (``casting``); a value that does not convert
    without loss is recorded in ``__cast_errors`` with the column and target type, and the row's
    source values in ``__raw_record``: the row is rejected. Columns in ``passthrough`` already
    have their target type (a typed source) and are taken as they are. With ``row_errors`` the
    scan has a ``ROW_ERRORS`` column whose reasons reject their rows. ``keep`` adds columns
    (alias: SQL over the scan) carried through unchanged. One source column may feed several
    target columns.

    Built in layers so that each value is read, converted and checked once: raw text, then the
    typed value, then the reason a value is rejected, then the row.
    """
    keep = keep or {}
    names = list(columns)
    raw = [f"__raw_{i}" for i in range(len(names))]
    val = [f"__val_{i}" for i in range(len(names))]
    err = [f"__err_{i}" for i in range(len(names))]
    sources = list(dict.fromkeys(c for name, col in columns.items() for c in col.source_columns(name)))
    src = {c: f"__src_{j}" for j, c in enumerate(sources)}
    carried = [*keep, *([ROW_ERRORS] if row_errors else [])]

    first = [
        f"{_raw(name, col) if name not in passthrough else quote(col.source or name)} AS {r}"
        for (name, col), r in zip(columns.items(), raw)
    ]
    first += [f"{quote(c)}::VARCHAR AS {alias}" for c, alias in src.items()]
    first += [f"{sql} AS {quote(alias)}" for alias, sql in keep.items()] + ([quote(ROW_ERRORS)] if row_errors else [])

    # An expression column's raw text: NULL where the expression failed, its result otherwise.
    text = {
        r: f"nullif({r}, {_NULL_RESULT})" if col.expression and name not in passthrough else r
        for (name, col), r in zip(columns.items(), raw)
    }
    typed = [
        f"{r} AS {v}"
        if name in passthrough
        else f"{casting.convert(col.duckdb_type, col.format).value(text[r])} AS {v}"
        for (name, col), r, v in zip(columns.items(), raw, val)
    ]

    checks = []
    for (name, col), r, v, e in zip(columns.items(), raw, val, err):
        if col.expression and name not in passthrough:
            exact = casting.convert(col.duckdb_type, col.format).exact(text[r], v)
            checks.append(
                f"CASE WHEN {r} IS NULL THEN {literal(f'{name}: its expression failed')} "
                f"WHEN {text[r]} IS NOT NULL AND NOT {exact} THEN {literal(cast_reason(name, col))} END AS {e}"
            )
            continue
        if col.duckdb_type == "VARCHAR":
            # Text is taken as it is; only a NUL character rejects it (no destination stores one).
            checks.append(f"CASE WHEN contains({r}, chr(0)) THEN {literal(nul_reason(name))} END AS {e}")
            continue
        if name in passthrough:
            continue
        exact = casting.convert(col.duckdb_type, col.format).exact(r, v)
        reason = (
            f"CASE WHEN contains({r}, chr(0)) THEN {literal(nul_reason(name))} "
            f"ELSE {literal(cast_reason(name, col))} END"
        )
        checks.append(f"CASE WHEN {r} IS NOT NULL AND NOT {exact} THEN {reason} END AS {e}")
    failing = [c.rsplit(" AS ", 1)[1] for c in checks] + ([f"{quote(ROW_ERRORS)}::VARCHAR"] if row_errors else [])

    out = [f"{v} AS {quote(name)}" for name, v in zip(names, val)]
    out += [f"{literal(value)} AS {quote(name)}" for name, value in lineage.items()]
    out += [quote(alias) for alias in keep]
    if failing:
        any_failed = f"coalesce({', '.join(failing)}) IS NOT NULL"
        record = ", ".join(f"{literal(c)}: {alias}" for c, alias in src.items())
        out.append(
            f"CASE WHEN {any_failed} THEN list_filter([{', '.join(failing)}], lambda e: e IS NOT NULL) END AS "
            f"{CAST_ERRORS}"
        )
        # The raw text is kept only for rows that fail, so a rejected row shows what the file said.
        out.append(f"CASE WHEN {any_failed} THEN to_json({{{record}}})::VARCHAR END AS {RAW_RECORD}")
    passed = [*raw, *src.values(), *(quote(c) for c in carried)]
    layer1 = f"SELECT {', '.join(first)} FROM {scan}"
    layer2 = f"SELECT {', '.join([*passed, *typed])} FROM ({layer1})"
    layer3 = f"SELECT {', '.join([*val, *src.values(), *(quote(c) for c in carried), *checks])} FROM ({layer2})"
    return f"SELECT {', '.join(out)} FROM ({layer3})"


def cast_reason(name: str, col: ColumnSpec) -> str:
    """Rejection reason for a value that does not convert. It names the column and type, never the value."""
    return f"{name}: not a valid {col.type}" + (f" in format {col.format}" if col.format else "")


def nul_reason(name: str) -> str:
    return f"{name}: contains a NUL character"


def needs_cast_errors(
    columns: dict[str, ColumnSpec], *, passthrough: frozenset[str] = frozenset(), row_errors: bool = False
) -> bool:
    return row_errors or any(name not in passthrough or col.duckdb_type == "VARCHAR" for name, col in columns.items())


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
        return [
            Rule(
                rule.name or f"{av.column} not in [{shown}]",
                f"coalesce({quote(av.column)}::VARCHAR NOT IN ({values}), false)",
            )
        ]
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
