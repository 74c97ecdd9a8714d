"""The ``expectations`` of a pipeline, checked and resolved when definitions load: names
known to Great Expectations, arguments it accepts, columns the table has, suite files read.
Errors name the file, line and field, like every other spec error."""

import difflib
import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from etl_platform.quality.catalog import ExpectationKind, expectation_kinds
from etl_platform.quality.expectations import Expectation
from etl_platform.spec.errors import SpecLocator
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import TableNames
from etl_platform.steps.stage import LINEAGE_COLUMNS


def _kind(name: str) -> ExpectationKind:
    return expectation_kinds()[name]


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, (str, date)):  # YAML reads 2024-01-31 as a date; GX takes dates as such
        return "string"
    return "array" if isinstance(value, (list, tuple)) else "object"


class _Problem(Exception):
    def __init__(self, path: Sequence[str | int], message: str):
        super().__init__(message)
        self.path = list(path)
        self.message = message


def _check_one(name: str, kwargs: Any, columns: set[str] | None, table: str) -> None:
    """Raise _Problem (path relative to the expectation's arguments) if GX would refuse this."""
    kinds = expectation_kinds()
    if name not in kinds:
        raise _Problem([], f"unknown expectation '{name}'{_suggest(name, list(kinds))} (Great Expectations 1.x names)")
    if not isinstance(kwargs, dict):
        raise _Problem([], "the arguments must be a mapping of argument names to values")
    kind = kinds[name]
    for arg, value in kwargs.items():
        if arg not in kind.arguments:
            offered = sorted(kind.arguments)
            raise _Problem(
                [arg], f"{name} has no argument '{arg}'{_suggest(arg, offered)}; it takes {', '.join(offered)}"
            )
        accepted = kind.arguments[arg].kinds
        if accepted and _json_kind(value) not in accepted:
            raise _Problem([arg], f"{arg} must be {' or '.join(accepted)}, not {_json_kind(value)} ({value!r})")
    missing = [a for a, spec in kind.arguments.items() if spec.required and a not in kwargs]
    if missing:
        raise _Problem([], f"{name} needs {', '.join(missing)}")
    if columns is not None:
        for arg, index, column in kind.column_arguments(kwargs):
            if column not in columns:
                path = [arg] if index is None else [arg, index]
                raise _Problem(path, f"table {table} has no column '{column}'{_suggest(column, list(columns))}")


def _default_name(name: str, kwargs: dict) -> str:
    columns = [c for _, _, c in _kind(name).column_arguments(kwargs)]
    return f"{name}__{'__'.join(columns)}" if columns else name


def _read_suite(path: Path) -> list[tuple[str, Any]]:
    """(type, kwargs) of each expectation in a GX suite file."""
    try:
        raw = json.loads(path.read_text())
    except OSError as err:
        raise _Problem([], f"cannot read suite file {path}: {err.strerror or err}") from err
    except json.JSONDecodeError as err:
        raise _Problem([], f"suite file {path} is not JSON: {err}") from err
    entries = raw.get("expectations") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise _Problem([], f"suite file {path} needs an 'expectations' list")
    found = []
    for j, entry in enumerate(entries):
        kind = entry.get("type") or entry.get("expectation_type") if isinstance(entry, dict) else None
        if not isinstance(kind, str):
            raise _Problem([], f"{path.name}: expectations[{j}] needs a 'type'")
        found.append((kind, entry.get("kwargs") or {}))
    return found


def resolve_expectations(
    spec: PipelineSpec, locate: SpecLocator, folder: Path, names: TableNames
) -> tuple[Expectation, ...]:
    """Every expectation of the pipeline, suite files expanded; raises SpecError naming file, line and field."""
    sensitive = {name for name, col in spec.source.columns.items() if col.sensitive}
    loaded_columns = set(spec.source.columns) | (set(LINEAGE_COLUMNS) if spec.destination.lineage_columns else set())
    resolved: list[Expectation] = []
    taken: dict[str, set[str]] = {}
    for i, entry in enumerate(spec.expectations):
        table = entry.asset or names.table
        if table not in (names.table, *names.transforms):
            offered = [names.table, *names.transforms]
            raise locate.error(
                ["expectations", i, "asset"],
                f"'{table}' is not a table of this pipeline{_suggest(table, offered)}; it has {', '.join(offered)}",
            )
        # A transform's columns are known once its SQL runs: GX reports an unknown one then.
        columns = loaded_columns if table == names.table and spec.source.columns else None
        if entry.expectation is not None:
            base = ["expectations", i, entry.expectation]
            try:
                _check_one(entry.expectation, entry.arguments, columns, table)
            except _Problem as problem:  # our own carrier of the message, with nothing behind it
                raise locate.error(base + problem.path, problem.message) from None
            items = [(entry.expectation, dict(entry.arguments), entry.name)]
        else:
            path = folder / entry.suite
            field_path = ["expectations", i, "suite"]
            if Path(entry.suite).is_absolute() or ".." in Path(entry.suite).parts:
                raise locate.error(
                    field_path, "the suite file must be inside the pipeline's folder (no absolute paths or '..')"
                )
            try:
                listed = _read_suite(path)
                for j, (kind, kwargs) in enumerate(listed):
                    try:
                        _check_one(kind, kwargs, columns, table)
                    except _Problem as problem:  # our own carrier of the message, with nothing behind it
                        where = ".".join(str(p) for p in [f"expectations[{j}]", kind, *problem.path])
                        raise _Problem([], f"{entry.suite}: {where}: {problem.message}") from None
            except _Problem as problem:
                # not our carrier of the message, but what it was raised from: the suite file's OSError or JSON error
                raise locate.error(field_path, problem.message) from problem.__cause__
            prefix = f"{entry.name}__" if entry.name else ""
            items = [
                (kind, dict(kwargs), None if not prefix else prefix + _default_name(kind, kwargs))
                for kind, kwargs in listed
            ]
        line = locate.line_of(["expectations", i])
        for kind, kwargs, chosen in items:
            check_name = chosen or _default_name(kind, kwargs)
            used = taken.setdefault(table, set())
            if chosen and chosen in used:
                raise locate.error(["expectations", i, "name"], f"another check on {table} is already named '{chosen}'")
            n, unique = 1, check_name
            while unique in used:
                n += 1
                unique = f"{check_name}_{n}"
            used.add(unique)
            touched = {c for _, _, c in _kind(kind).column_arguments(kwargs)}
            resolved.append(
                Expectation(
                    unique, table, kind, kwargs, entry.blocking, _kind(kind).family, bool(touched & sensitive), line
                )
            )
    return tuple(resolved)
