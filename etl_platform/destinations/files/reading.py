"""Reading a file table: only the files its manifest lists, in the table's format."""

from collections.abc import Sequence
from pathlib import Path

import duckdb

from etl_platform.destinations.files.storage import FilesLocation, _S3Table
from etl_platform.sql import literal, quote

_ROW = "__etl_row"  # the staged row's position: among equal cursors the row read last wins
_FILE = "__etl_file"


# Reading


def _scan(paths: Sequence[str], file_format: str, *, with_file: bool) -> str:
    listed = "[" + ", ".join(literal(p) for p in paths) + "]"
    options = "union_by_name = true, hive_partitioning = false" + (
        f", filename = {literal(_FILE)}" if with_file else ""
    )
    if file_format == "parquet":
        return f"read_parquet({listed}, {options})"
    # Every cell as text, cast below to the manifest's types; "" is an empty string, an empty cell NULL.
    return (
        f"read_csv({listed}, header = true, delim = ',', quote = '\"', escape = '\"', all_varchar = true, "
        f"allow_quoted_nulls = false, {options})"
    )


def _relation(
    duck: duckdb.DuckDBPyConnection,
    columns: Sequence[tuple[str, str]],
    paths: Sequence[str],
    file_format: str,
    *,
    with_file: bool = False,
) -> str:
    """A SELECT over ``paths`` with exactly ``columns``, typed; NULL where a file lacks a column."""
    if not paths:
        return "(SELECT " + ", ".join(f"CAST(NULL AS {t}) AS {quote(n)}" for n, t in columns) + " LIMIT 0)"
    scan = _scan(paths, file_format, with_file=with_file)
    present = {row[0] for row in duck.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    select = [f"CAST({quote(n) if n in present else 'NULL'} AS {t}) AS {quote(n)}" for n, t in columns]
    return f"(SELECT {', '.join(select + ([_FILE] if with_file else []))} FROM {scan})"


def read_table(
    duck: duckdb.DuckDBPyConnection,
    location: FilesLocation,
    schema: str,
    table: str,
    *,
    download_to: Path | None = None,
) -> str:
    """SQL for the table's current version, to use as ``SELECT ... FROM <this>`` in ``duck``.

    Only the files the manifest lists are read. An S3 table is first downloaded to
    ``download_to``, which must outlive the queries. Raises FileNotFoundError when the
    table was never committed.
    """
    target = location.table(schema, table)
    manifest, _ = target.read_manifest()
    if manifest is None:
        raise FileNotFoundError(f"no table at {target}: it has not been committed yet")
    if isinstance(target, _S3Table) and download_to is None:
        raise ValueError(f"{target} is on S3: give download_to, a folder to copy its files into")
    paths = target.local_paths(manifest.files, download_to or Path())
    return _relation(duck, manifest.columns, list(paths), manifest.file_format)
