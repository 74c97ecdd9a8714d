"""Rows from a DB-API cursor (MySQL, SQLite) as a stream of Arrow record batches.

Each column's Arrow type is decided before the first row is read, from what the database
declares; a batch then converts its values to that type exactly or fails the read naming
the column. Nothing is guessed from the first rows, so a later value can never be
truncated to fit a type an earlier one suggested.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from etl_platform.connectors.registry import ConnectorError


class ValueMismatch(ConnectorError):
    """A value does not fit the type its column was read as."""


@dataclass(frozen=True)
class ColumnReader:
    """One column's Arrow type, and how one batch of its Python values becomes an Arrow array
    of that type (exactly, or raising ValueMismatch)."""

    arrow_type: object
    build: Callable[[list], object]


def typed(arrow_type) -> ColumnReader:
    """For values the driver already gives as the matching Python type: pyarrow converts them
    exactly or raises (ints out of range, decimals with more digits than the scale, ...)."""
    import pyarrow as pa

    return ColumnReader(arrow_type, lambda values: pa.array(values, type=arrow_type))


def inferred(arrow_type) -> ColumnReader:
    """For a driver whose values may be of any type (SQLite): pyarrow would silently truncate a
    float to an int64, so the batch's own type is inferred and must be the column's (or null)."""
    import pyarrow as pa

    def build(values: list):
        array = pa.array(values)
        if pa.types.is_null(array.type):
            return pa.nulls(len(values), arrow_type)
        if array.type != arrow_type:
            raise ValueMismatch(f"holds a value of type {array.type} in a column read as {arrow_type}")
        return array

    return ColumnReader(arrow_type, build)


def rows_to_arrow(names: list[str], partitions: Iterable[list], readers: list[ColumnReader]):
    """Row tuples, in partitions -> a pyarrow RecordBatchReader with one batch per partition."""
    import pyarrow as pa

    schema = pa.schema([pa.field(name, reader.arrow_type) for name, reader in zip(names, readers, strict=True)])

    def batches():
        for rows in partitions:
            columns = zip(*rows) if rows else [() for _ in names]
            yield pa.RecordBatch.from_arrays(
                [_column(name, reader, list(values)) for name, reader, values in zip(names, readers, columns)],
                schema=schema,
            )

    return pa.RecordBatchReader.from_batches(schema, batches())


def _column(name: str, reader: ColumnReader, values: list):
    import pyarrow as pa

    try:
        return reader.build(values)
    except ValueMismatch as err:  # the same error, named for its column
        raise ValueMismatch(f"column {name!r} {err}") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError):
        # pyarrow's message quotes the value; a read's failure names the column, never row data.
        raise ValueMismatch(f"column {name!r} holds a value that is not exactly a {reader.arrow_type}") from None
