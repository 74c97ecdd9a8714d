"""MySQL and MariaDB columns typed by the wire's type codes, every value kept exactly.

PyMySQL reads the text protocol: each value arrives as the server prints it and is parsed by
its column's type code. Most codes map to an Arrow type directly. Where the print or the
parse would change a value, the read asks differently: FLOAT is printed rounded to 6
significant digits, so it is fetched as the exact DOUBLE of the stored single-precision
value (loaded as DOUBLE); dates and datetimes stay text, cast by DuckDB, so a zero date ('0000-00-00') rejects
its row instead of failing the load; DECIMAL wider than 38 digits loads as its text.
"""

from etl_platform.connectors.sql_rows import ColumnReader, ValueMismatch, typed

_DECIMAL_DIGITS = 38  # DuckDB's widest DECIMAL
_BINARY_CHARSET = 63  # the charset number of BINARY, VARBINARY and BLOB columns
_SOURCE = "__etl_source"


def decoders() -> dict:
    """PyMySQL conversions for a read: DATE, DATETIME and TIMESTAMP stay as the server prints
    them (PyMySQL would hand zero or partial dates over as strings among date objects)."""
    from pymysql.constants import FIELD_TYPE as T
    from pymysql.converters import conversions

    return {k: v for k, v in conversions.items() if k not in (T.DATE, T.DATETIME, T.TIMESTAMP)}


def exact_select(conn, sql: str, quote) -> tuple[str, frozenset[str]]:
    """The SELECT to run, with every FLOAT column multiplied by 1e0 (a DOUBLE, printed in full),
    and the names of those columns, learnt by running the query with LIMIT 0."""
    from pymysql.constants import FIELD_TYPE as T

    with conn.exec_driver_sql(f"SELECT * FROM ({sql}) AS {_SOURCE} LIMIT 0") as probe:
        described = [(d[0], d[1]) for d in probe.cursor.description]
    floats = frozenset(name for name, code in described if code == T.FLOAT)
    if not floats:
        return sql, floats
    exprs = [
        f"{_SOURCE}.{quote(n)} * 1e0 AS {quote(n)}" if n in floats else f"{_SOURCE}.{quote(n)}" for n, _ in described
    ]
    return f"SELECT {', '.join(exprs)} FROM ({sql}) AS {_SOURCE}", floats


def column_readers(fields, floats: frozenset[str]) -> tuple[list[ColumnReader], dict[str, str], list[str]]:
    """A reader for each field of a result (PyMySQL's field descriptors), the DuckDB types its text
    columns are cast to, and notices for the user."""
    readers, hints, notices = [], {}, []
    for f in fields:
        reader, hint, notice = _reader(f, f.name in floats)
        readers.append(reader)
        if hint:
            hints[f.name] = hint
        if notice:
            notices.append(f"column {f.name!r}: {notice}")
    return readers, hints, notices


def _reader(f, was_float: bool) -> tuple[ColumnReader, str | None, str | None]:
    import pyarrow as pa
    from pymysql.connections import TEXT_TYPES
    from pymysql.constants import FIELD_TYPE as T
    from pymysql.constants import FLAG

    code, unsigned = f.type_code, bool(f.flags & FLAG.UNSIGNED)
    if code in (T.TINY, T.SHORT, T.INT24, T.LONG, T.YEAR):
        return typed(pa.int64()), None, None
    if code == T.LONGLONG:
        return typed(pa.uint64() if unsigned else pa.int64()), None, None
    if code == T.BIT:  # big-endian bytes, up to 64 bits
        return ColumnReader(pa.uint64(), _bits), None, None
    if code == T.DOUBLE:
        return (_single_precision() if was_float else typed(pa.float64())), None, None
    if code == T.FLOAT:  # only when read without exact_select
        raise ValueMismatch(f"column {f.name!r} is FLOAT, which the server sends rounded to 6 digits")
    if code in (T.DECIMAL, T.NEWDECIMAL):
        # The wire gives the display length (digits, plus point, plus sign); MySQL's own inverse.
        precision = f.length - (1 if f.scale > 0 else 0) - (0 if unsigned else 1)
        if precision <= _DECIMAL_DIGITS:
            return typed(pa.decimal128(max(precision, 1), f.scale)), None, None
        notice = (
            f"DECIMAL({precision},{f.scale}) is wider than DuckDB's DECIMAL ({_DECIMAL_DIGITS} digits): loaded as text"
        )
        return ColumnReader(pa.string(), _decimal_text), None, notice
    if code == T.DATE:
        return typed(pa.string()), "DATE", None
    if code in (T.DATETIME, T.TIMESTAMP):
        return typed(pa.string()), "TIMESTAMP", None
    if code == T.TIME:  # -838:59:59 to 838:59:59, as a timedelta
        return typed(pa.duration("us")), None, None
    if code in TEXT_TYPES and f.charsetnr == _BINARY_CHARSET:
        return typed(pa.binary()), None, None  # BINARY, VARBINARY, BLOB, GEOMETRY: the bytes as stored
    return typed(pa.string()), None, None  # text in any collation, ENUM, SET, JSON


def _bits(values: list):
    import pyarrow as pa

    return pa.array([None if v is None else int.from_bytes(v, "big") for v in values], type=pa.uint64())


def _decimal_text(values: list):
    import pyarrow as pa

    return pa.array([None if v is None else format(v, "f") for v in values], type=pa.string())


def _single_precision() -> ColumnReader:
    """A FLOAT read as the exact DOUBLE of its stored single-precision value (checked). A DOUBLE,
    not a FLOAT: the load's implicit FLOAT columns are DOUBLE, and a FLOAT would reach them
    through its shortest text (3.1415927, not 3.1415927410125732)."""
    import pyarrow as pa

    def build(values: list):
        wide = pa.array(values, type=pa.float64())
        if not wide.cast(pa.float32(), safe=False).cast(pa.float64()).equals(wide):
            raise ValueMismatch("holds a value that is not a single-precision FLOAT")
        return wide

    return ColumnReader(pa.float64(), build)
