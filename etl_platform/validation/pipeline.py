"""Checks a pipeline spec needs beyond its types: columns that exist, SQL that binds,
references that resolve. Run when definitions load, so `dg check defs` reports them."""

import difflib
import re
from functools import cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import duckdb

from etl_platform.connectors.formats.base import FORMATS, file_format, missing_columns
from etl_platform.connectors.landing import LANDING, LocalFolder
from etl_platform.connectors.registry import READ_FIELDS, connector_class
from etl_platform.destinations.base import WAREHOUSE
from etl_platform.destinations.registry import DESTINATION_KINDS, destination_class
from etl_platform.errors import first_line
from etl_platform.spec.base import IDENTIFIER
from etl_platform.spec.errors import SpecLocator
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import TableNames, _scratch, table_names, transform_references
from etl_platform.sql import quote
from etl_platform.validation.partitions import check_partitions

# Files whose header is compared with the mapping. A few recent ones are enough to tell a
# wrong mapping (no file has the column) from one bad file (rejected when it is loaded).
FILES_TO_PEEK = 3


def _first_line(err: Exception) -> str:
    return first_line(err)


def _suggest(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _bind(sql: str, columns: dict[str, str]) -> None:
    """Raise if ``sql`` (an expression) does not bind against columns of these types.

    A relation is bound when it is made; executing it as well would cost a third more, in
    every pipeline's load, for nothing a check needs.
    """
    cols = ", ".join(f"NULL::{dtype} AS {quote(name)}" for name, dtype in columns.items())
    _scratch().sql(f"SELECT ({sql}) FROM (SELECT {cols})")


def check_pipeline(
    spec: PipelineSpec,
    pipeline: str,
    locate: SpecLocator,
    landing: LocalFolder | None,
    kinds: dict[str, str] | None = None,
) -> TableNames:
    """Validate what types cannot; return the tables the pipeline writes.

    ``kinds`` maps each declared connection to its kind (default: only 'landing').
    """
    if not re.match(IDENTIFIER, pipeline):
        raise locate.error([], f"pipeline name {pipeline!r} (its folder name) must be a plain identifier")
    names = table_names(spec, pipeline)
    src = spec.source
    kinds = kinds or {LANDING: "local"}
    if src.connection not in kinds:
        raise locate.error(
            ["source", "connection"],
            f"unknown connection {src.connection!r}{_suggest(src.connection, set(kinds))}; "
            "declare it in connections/defs.yaml",
        )
    reads = connector_class(kinds[src.connection]).reads
    if reads != src.reads:
        needs = READ_FIELDS[reads]
        raise locate.error(
            ["source", "connection"],
            f"connection {src.connection!r} is a {kinds[src.connection]} connection: the source needs {needs}",
        )
    if src.reads == "files":
        if src.file_format not in FORMATS:
            field = ["source", "format"] if src.format else ["source", "files"]
            raise locate.error(
                field, f"cannot tell the file format of {src.files!r}; set format to one of {', '.join(FORMATS)}"
            )
        if Path(src.files).is_absolute() or ".." in Path(src.files).parts:
            raise locate.error(
                ["source", "files"], "the pattern must stay inside the connection's folder (no absolute paths or '..')"
            )
    if src.query is not None and not src.query.strip():
        raise locate.error(["source", "query"], "the query is empty")
    if src.endpoint is not None:
        _check_endpoint(src.endpoint, locate)

    target_types = {name: col.duckdb_type for name, col in src.columns.items()}
    for name, col in src.columns.items():
        if col.expression:
            try:
                named = {c: "VARCHAR" for c in col.source_columns(name) if c != (col.source or name)}
                _bind(col.expression, {"value": "VARCHAR", **named})
            except (duckdb.Error, ValueError) as err:
                raise locate.error(["source", "columns", name, "expression"], _first_line(err)) from err
    if src.columns:  # otherwise the columns are the source's, known when it is read
        _check_sync(spec, locate, target_types)
        _check_rules(spec, locate, target_types)
    _check_destination(spec, locate, kinds, target_types)
    check_partitions(spec, locate, kinds)
    _check_transforms(spec, locate, names)
    if landing is not None and src.reads == "files" and src.connection == LANDING:
        _check_mapping_against_files(spec, locate, landing)
    return names


def _check_destination(
    spec: PipelineSpec, locate: SpecLocator, kinds: dict[str, str], target_types: dict[str, str]
) -> None:
    dest = spec.destination
    if dest.connection == WAREHOUSE:
        kind = None
    elif dest.connection == LANDING:
        raise locate.error(
            ["destination", "connection"],
            "the landing folder is where files arrive, not where tables go; declare a local connection for the output "
            "folder",
        )
    elif dest.connection not in kinds:
        known = {WAREHOUSE} | {n for n, k in kinds.items() if k in DESTINATION_KINDS and n != LANDING}
        raise locate.error(
            ["destination", "connection"],
            f"unknown connection {dest.connection!r}{_suggest(dest.connection, known)}; use 'warehouse' or declare it "
            "in connections/defs.yaml",
        )
    else:
        kind = kinds[dest.connection]
        if kind not in DESTINATION_KINDS:
            raise locate.error(
                ["destination", "connection"],
                f"connection {dest.connection!r} is a {kind} connection; a pipeline loads into the warehouse or a "
                f"{', '.join(DESTINATION_KINDS)} connection",
            )
    if not destination_class(kind).writes_files:
        for field in ("format", "partition_by"):
            if getattr(dest, field):
                file_kinds = " or ".join(k for k in DESTINATION_KINDS if destination_class(k).writes_files)
                raise locate.error(
                    ["destination", field], f"{field} is for file destinations ({file_kinds}), not {kind or WAREHOUSE}"
                )
    if target_types:
        for i, column in enumerate(dest.partition_by):
            if column not in target_types:
                raise locate.error(
                    ["destination", "partition_by", i],
                    f"unknown column '{column}'{_suggest(column, set(target_types))}",
                )
    if kind is not None and spec.transforms:
        raise locate.error(
            ["transforms"],
            f"transforms are built in the warehouse, and this pipeline loads into {dest.connection!r}; "
            "build them in a pipeline that loads into the warehouse",
        )


def _check_endpoint(endpoint: dict, locate: SpecLocator) -> None:
    from pydantic import ValidationError

    from etl_platform.connectors.rest.pagination import RestEndpoint

    try:
        RestEndpoint.model_validate(endpoint)
    except ValidationError as err:
        first = err.errors()[0]
        # pydantic's error quotes the input, e.g. a refused path that is a URL with credentials: dropped
        raise locate.error(["source", "endpoint", *first["loc"]], first["msg"]) from None


def _check_sync(spec: PipelineSpec, locate: SpecLocator, target_types: dict[str, str]) -> None:
    for i, key in enumerate(spec.sync.primary_key):
        if key not in target_types:
            raise locate.error(
                ["sync", "primary_key", i], f"'{key}' is not a target column{_suggest(key, set(target_types))}"
            )
    if spec.sync.cursor and spec.sync.cursor not in target_types:
        cursor = spec.sync.cursor
        raise locate.error(
            ["sync", "cursor"], f"'{cursor}' is not a target column{_suggest(cursor, set(target_types))}"
        )


def _check_rules(spec: PipelineSpec, locate: SpecLocator, target_types: dict[str, str]) -> None:
    known = set(target_types)
    for i, rule in enumerate(spec.rules):
        columns = [(["not_null", j], c) for j, c in enumerate(rule.not_null or [])]
        if rule.accepted_values:
            columns.append((["accepted_values", "column"], rule.accepted_values.column))
        if rule.regex:
            columns.append((["regex", "column"], rule.regex.column))
        for path, column in columns:
            if column not in known:
                raise locate.error(["rules", i, *path], f"'{column}' is not a target column{_suggest(column, known)}")
        if rule.check is not None:
            try:
                _bind(rule.check, target_types)
            except duckdb.Error as err:
                raise locate.error(["rules", i, "check"], _first_line(err)) from err


def _check_transforms(spec: PipelineSpec, locate: SpecLocator, names: TableNames) -> None:
    seen: set[str] = {names.table, names.rejected}
    for i, transform in enumerate(spec.transforms):
        if transform.name in seen:
            raise locate.error(["transforms", i, "name"], f"'{transform.name}' is already a table of this pipeline")
        seen.add(transform.name)
    for i, transform in enumerate(spec.transforms):
        try:
            statements = duckdb.extract_statements(transform.sql)
            if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
                raise locate.error(["transforms", i, "sql"], "must be exactly one SELECT statement")
            refs = transform_references(transform.sql)
        except duckdb.Error as err:
            raise locate.error(["transforms", i, "sql"], _first_line(err)) from err
        for ref in sorted(refs):
            parts = ref.split(".")
            if len(parts) == 1 and ref not in names.own:
                raise locate.error(
                    ["transforms", i, "sql"],
                    f"refers to table '{ref}', which this pipeline does not produce{_suggest(ref, names.own)} "
                    "(another pipeline's table is written '<pipeline>.<table>')",
                )
            if len(parts) == 1 and ref == transform.name:
                raise locate.error(["transforms", i, "sql"], f"'{ref}' refers to itself")
            if len(parts) > 2:
                raise locate.error(
                    ["transforms", i, "sql"], f"'{ref}': write tables as '<table>' or '<pipeline>.<table>'"
                )
    _check_transform_cycles(spec, locate)


def _check_transform_cycles(spec: PipelineSpec, locate: SpecLocator) -> None:
    names = [t.name for t in spec.transforms]
    reads = {t.name: [r for r in transform_references(t.sql) if r in names] for t in spec.transforms}
    try:
        TopologicalSorter(reads).prepare()
    except CycleError as err:  # the cycle, spelt out here, is all it says
        cycle = err.args[1]
        raise locate.error(
            ["transforms", names.index(cycle[0]), "sql"],
            f"transforms read each other in a cycle: {' -> '.join(reversed(cycle))}",
        ) from None


@cache
def _header(path: Path, mtime_ns: int, size: int, fmt_name: str, format_options) -> tuple[str, ...]:
    fmt = file_format(fmt_name, format_options)
    return tuple(fmt.columns(_scratch(), path))


def _check_mapping_against_files(spec: PipelineSpec, locate: SpecLocator, landing: LocalFolder) -> None:
    """A mapped column that none of the latest files has is a mistake in the spec, not in a file."""
    src = spec.source
    try:
        files = landing.list(src.files)[-FILES_TO_PEEK:]
    except (OSError, ValueError):
        return
    headers = []
    for path in files:
        stat = path.stat()
        try:
            headers.append(_header(path, stat.st_mtime_ns, stat.st_size, src.file_format, src.format_options))
        except duckdb.Error:
            continue  # an unreadable file is rejected when loaded; it says nothing about the spec
    if not headers:
        return
    missing_everywhere = set.intersection(*(set(missing_columns(h, src.columns)) for h in headers))
    for name, col in src.columns.items():
        source = col.source or name
        if source in missing_everywhere:
            offered = sorted(set().union(*headers))
            field = ["source", "columns", name, "from"] if col.source else ["source", "columns", name]
            raise locate.error(
                field,
                f"column '{source}' is not in the {len(headers)} latest file(s) matching '{src.files}'"
                f"{_suggest(source, set(offered))}; they have: {', '.join(offered)}",
            )
