"""SQLite columns typed by their declared affinity and by every value the read returns.

SQLite types values, not columns: a declared type is only an affinity, and any row may hold
an integer, a real, text or a blob (STRICT tables aside); a query's columns declare nothing.
So one pass in SQLite, in the same transaction as the read, first finds which storage
classes each column of the result holds. The column then loads as the narrowest type that
holds all of them exactly, and never narrower than its declared affinity:

    integers only                              BIGINT
    reals, or reals and integers within ±2^53  DOUBLE
    any text, or reals and larger integers     VARCHAR (integers as digits, reals as the
                                               shortest text that reads back to the same double)
    blobs only                                 BLOB
    blobs beside other values                  refused, naming the column

A column without values in the read takes its declared affinity (INTEGER: BIGINT, REAL and
NUMERIC: DOUBLE, TEXT: VARCHAR, BLOB: BLOB), so an empty window of an incremental load keeps
the table's types.
"""

from etl_platform.connectors.sql_rows import ColumnReader, ValueMismatch, inferred

_INTEGER, _REAL, _TEXT, _BLOB, _WIDE_INTEGER = 1, 2, 4, 8, 16  # storage classes found, as bits
_EXACT_IN_DOUBLE = 2**53
_SOURCE = "__etl_source"
_BY_RANK = ("BIGINT", "DOUBLE", "VARCHAR")
_CLASS_NAMES = {_INTEGER: "integers", _WIDE_INTEGER: "integers beyond ±2^53", _REAL: "reals", _TEXT: "text"}


def exact_read(conn, sql: str, quote, table: list[str] | None) -> tuple[str, list[str], list[ColumnReader], list[str]]:
    """Scan the result of ``sql`` for its storage classes (``table``: the parts of the table it reads,
    for declared types). Returns the SELECT to run, its column names, a reader per column and notices.
    Call it inside the transaction the read runs in."""
    wrapped = f"SELECT * FROM ({sql}) AS {_SOURCE}"  # unique column names: SQLite renames repeats
    with conn.exec_driver_sql(f"{wrapped} LIMIT 0") as probe:
        names = list(probe.keys())
    declared = _declared_types(conn, table) if table else {}
    found = _storage_classes(conn, wrapped, [quote(n) for n in names]) if names else []
    readers, notices = [], []
    for name, classes in zip(names, found, strict=True):
        reader, notice = _decide(name, classes, declared.get(name))
        readers.append(reader)
        if notice:
            notices.append(f"column {name!r}: {notice}")
    return wrapped, names, readers, notices


def _storage_classes(conn, wrapped: str, columns: list[str]) -> list[int]:
    # Each class is a distinct power of two, so the sum of the distinct ones is their union.
    classes = [
        f"coalesce(sum(DISTINCT CASE typeof({c}) WHEN 'integer' THEN "
        f"CASE WHEN {c} BETWEEN -{_EXACT_IN_DOUBLE} AND {_EXACT_IN_DOUBLE} THEN {_INTEGER} ELSE {_WIDE_INTEGER} END "
        f"WHEN 'real' THEN {_REAL} WHEN 'text' THEN {_TEXT} WHEN 'blob' THEN {_BLOB} END), 0)"
        for c in columns
    ]
    with conn.exec_driver_sql(f"SELECT {', '.join(classes)} FROM ({wrapped})") as result:
        return [int(v) for v in result.one()]


def _declared_types(conn, table: list[str]) -> dict[str, str]:
    schema, name = (table[0], table[1]) if len(table) == 2 else ("main", table[0])
    with conn.exec_driver_sql("SELECT name, type FROM pragma_table_info(?, ?)", (name, schema)) as result:
        return {column: declared for column, declared in result}


def _affinity_rank(declared: str | None) -> int | str | None:
    """SQLite's affinity rules, in its order, as a rank (0 BIGINT, 1 DOUBLE, 2 VARCHAR), "blob", or
    None (no declared type). NUMERIC affinity is DOUBLE, except declared booleans (integers) and
    dates and times (SQLite's date functions keep them as text)."""
    if declared is None or not declared.strip():
        return None
    upper = declared.upper()
    if "INT" in upper:
        return 0
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return 2
    if "BLOB" in upper:
        return "blob"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return 1
    if "BOOL" in upper:
        return 0
    return 2 if "DATE" in upper or "TIME" in upper else 1


def _decide(name: str, classes: int, declared: str | None) -> tuple[ColumnReader, str | None]:
    import pyarrow as pa

    base = _affinity_rank(declared)
    if classes & _BLOB or (base == "blob" and not classes):
        if classes & ~_BLOB:
            raise ValueMismatch(
                f"column {name!r} holds blobs beside {_described(classes & ~_BLOB)}, which no one type holds exactly; "
                f"select it converted in a query, e.g. hex({name}) or CAST({name} AS TEXT)"
            )
        return inferred(pa.binary()), None
    rank = max([r for r in (_values_rank(classes), base) if isinstance(r, int)], default=2)
    if rank == 1 and classes & _WIDE_INTEGER:
        rank = 2  # a DOUBLE would round them
    reader = (inferred(pa.int64()), ColumnReader(pa.float64(), _doubles), ColumnReader(pa.string(), _text))[rank]
    widened = declared and classes and rank > (base if isinstance(base, int) else -1)
    notice = f"declared {declared} but holds {_described(classes)}: loaded as {_BY_RANK[rank]}" if widened else None
    return reader, notice


def _values_rank(classes: int) -> int | None:
    if classes & _TEXT:
        return 2
    if classes & _REAL:
        return 2 if classes & _WIDE_INTEGER else 1
    return 0 if classes else None


def _described(classes: int) -> str:
    return ", ".join(label for bit, label in _CLASS_NAMES.items() if classes & bit) or "nothing"


def _doubles(values: list):
    import pyarrow as pa

    return pa.array(values, type=pa.float64())  # integers beyond ±2^53 raise rather than round


def _text(values: list):
    import pyarrow as pa

    return pa.array([_as_text(v) for v in values], type=pa.string())


def _as_text(value):
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value)  # the shortest text that reads back as the same double
    raise ValueMismatch("holds a blob in a column read as text")
