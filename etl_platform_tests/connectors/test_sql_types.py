"""Every type a database source declares loads exactly, or its row is rejected with the reason,
or the load is refused naming the column: PostgreSQL, MariaDB, SQLite and DuckDB files, each
read through its connector into a real DuckDB warehouse (``load_source``, no Dagster).

The generated tests insert edge values through each database's own driver and compare what
lands in the warehouse with the values inserted (computed in Python, not read back through
the platform)."""

import json
import math
import sqlite3
import struct
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Context, Decimal

import duckdb
import psycopg2
import pymysql
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform.connectors.registry import build
from etl_platform.connectors.sql import SourceError
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import extract, load_target
from etl_platform_tests.conftest import examples

REJECT = object()  # the expected outcome of a value DuckDB cannot hold: its row is rejected


@dataclass
class Loaded:
    types: dict[str, str]
    rows: dict[int, dict[str, tuple]]  # id -> column -> (value, value as DuckDB's text)
    rejected: dict[int, list[str]]  # id -> reasons
    logs: list[str] = field(default_factory=list)


def load(
    kind: str, options: dict, *, table: str | None = None, query: str | None = None, columns: dict | None = None
) -> Loaded:
    """Load a table or query of a connection into a fresh in-memory warehouse, the way a pipeline
    without (or with) a column mapping does. Rows must have an integer column ``id``."""
    source = {"connection": "src", **({"table": table} if table else {"query": query})}
    if columns:
        source["columns"] = columns
    spec = PipelineSpec.model_validate(
        {"source": source, "destination": {"table": "t", "lineage_columns": False}, "sync": {"allow_empty": True}}
    )
    logs: list[str] = []
    with duckdb.connect() as con:
        extract.load_source(
            spec,
            pipeline="p",
            connector=build("src", kind, dict(options)),
            con=con,
            target=load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected")),
            run_id="r",
            log=logs.append,
        )
        types = {row[0]: row[1] for row in con.execute("DESCRIBE p.t").fetchall()}
        names = list(types)
        select = ", ".join(f'"{n}", "{n}"::VARCHAR' for n in names)
        rows = {}
        for row in con.execute(f"SELECT {select} FROM p.t").fetchall():
            values = {n: (row[2 * i], row[2 * i + 1]) for i, n in enumerate(names)}
            rows[int(values["id"][0])] = values
        rejected = {
            int(json.loads(record)["id"]): sorted(reasons)
            for reasons, record in con.execute("SELECT reasons, record FROM p.t_rejected").fetchall()
        }
    return Loaded(types, rows, rejected, logs)


def decimals(precision: int, scale: int):
    """Every value of DECIMAL(precision, scale), built exactly (Decimal's default context would
    round anything past 28 digits)."""
    wide = Context(prec=100)
    return st.integers(-(10**precision) + 1, 10**precision - 1).map(lambda n: Decimal(n).scaleb(-scale, wide))


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def single(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def float32s(*, finite: bool = False):
    """Single-precision values, also from random bit patterns: most have more digits than their
    shortest text, which is how a detour through text shows."""
    bits = st.integers(0, 2**32 - 1).map(lambda b: struct.unpack("<f", struct.pack("<I", b))[0])
    values = st.one_of(st.floats(width=32), bits)
    return values.filter(math.isfinite) if finite else values


def float64s(*, finite: bool = False):
    bits = st.integers(0, 2**64 - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0])
    values = st.one_of(st.floats(), bits)
    return values.filter(math.isfinite) if finite else values


# --- SQLite -----------------------------------------------------------------------------------


def sqlite_file(tmp_path, ddl: str, rows: list[tuple]) -> str:
    path = tmp_path / "source.sqlite"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as con:
        con.execute(ddl)
        con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(rows[0]))})", rows)
    con.close()
    return str(path)


def test_a_sqlite_value_after_the_first_thousand_that_is_not_an_integer_loads_exactly(tmp_path, etl_home):
    """The defect: the first 1,000 values said int64, and pyarrow truncated 12.5 to 12."""
    rows = [(i, i, i) for i in range(1000)] + [(1000, 12.5, "twelve and a half"), (1001, 2**62 + 1, 7)]
    path = sqlite_file(tmp_path, "CREATE TABLE t (id INTEGER, amount NUMERIC, code INTEGER)", rows)
    loaded = load("sqlite", {"path": path}, table="t")
    assert loaded.types == {"id": "BIGINT", "amount": "VARCHAR", "code": "VARCHAR"}
    assert loaded.rows[1000]["amount"][0] == "12.5" and loaded.rows[1000]["code"][0] == "twelve and a half"
    assert loaded.rows[1001]["amount"][0] == str(2**62 + 1)  # beside a real, a DOUBLE would round it
    assert loaded.rows[999]["amount"][0] == "999"
    assert not loaded.rejected
    assert any(
        "column 'code': declared INTEGER but holds integers, text: loaded as VARCHAR" in line for line in loaded.logs
    )


def test_a_sqlite_numeric_column_of_integers_and_reals_loads_as_double(tmp_path, etl_home):
    rows = [(i, i) for i in range(1000)] + [(1000, 12.5), (1001, -0.0), (1002, float("inf"))]
    path = sqlite_file(tmp_path, "CREATE TABLE t (id INTEGER PRIMARY KEY, price DECIMAL(10,2))", rows)
    loaded = load("sqlite", {"path": path}, table="t")
    assert loaded.types["price"] == "DOUBLE"
    assert [loaded.rows[i]["price"][0] for i in (999, 1000, 1002)] == [999.0, 12.5, float("inf")]


def test_an_empty_sqlite_table_and_a_query_take_their_types_from_what_they_declare(tmp_path, etl_home):
    path = sqlite_file(
        tmp_path,
        "CREATE TABLE t (id INTEGER, qty INTEGER, price REAL, name TEXT, raw BLOB, at DATETIME, x)",
        [(1,) * 7],
    )
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM t")
    con.close()
    loaded = load("sqlite", {"path": path}, table="t")
    assert loaded.types == {
        "id": "BIGINT",
        "qty": "BIGINT",
        "price": "DOUBLE",
        "name": "VARCHAR",
        "raw": "BLOB",
        "at": "VARCHAR",
        "x": "VARCHAR",
    }
    loaded = load("sqlite", {"path": path}, query="SELECT 1 AS id, 'a' || 'b' AS joined, 2.5 AS half, NULL AS absent")
    assert loaded.types == {"id": "BIGINT", "joined": "VARCHAR", "half": "DOUBLE", "absent": "VARCHAR"}
    assert loaded.rows[1]["half"][0] == 2.5


def test_a_sqlite_column_of_blobs_beside_text_is_refused_naming_the_column(tmp_path, etl_home):
    path = sqlite_file(tmp_path, "CREATE TABLE t (id INTEGER, payload TEXT)", [(1, "text"), (2, b"\x00\xff")])
    with pytest.raises(SourceError, match=r"column 'payload' holds blobs beside text.*hex\(payload\)"):
        load("sqlite", {"path": path}, table="t")
    path = sqlite_file(tmp_path, "CREATE TABLE t (id INTEGER, payload TEXT)", [(1, b"\x00\xff"), (2, None)])
    assert load("sqlite", {"path": path}, table="t").rows[1]["payload"][0] == b"\x00\xff"


SQLITE_DECLARED = ["INTEGER", "REAL", "TEXT", "BLOB", "NUMERIC", "", "BOOLEAN", "DATETIME", "VARCHAR(10)", "BIGINT"]
sqlite_values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
)


def sqlite_expected_type(declared: str, held: list[tuple[object, str]]) -> str:
    """The documented typing of a SQLite column, restated: the narrowest of BIGINT, DOUBLE and
    VARCHAR that holds every value held, never narrower than the declared affinity."""
    classes = {kind for _, kind in held if kind != "null"}
    wide = any(kind == "integer" and abs(v) > 2**53 for v, kind in held)
    upper = declared.upper()
    if "INT" in upper:
        rank = 0
    elif any(w in upper for w in ("CHAR", "CLOB", "TEXT")):
        rank = 2
    elif "BLOB" in upper or not upper:
        rank = -1
    elif any(w in upper for w in ("REAL", "FLOA", "DOUB")):
        rank = 1
    else:
        rank = 0 if "BOOL" in upper else 2 if "DATE" in upper or "TIME" in upper else 1
    if "BLOB" in upper and not classes:
        return "BLOB"
    if "text" in classes:
        rank = 2
    elif "real" in classes:
        rank = max(rank, 2 if wide else 1)
    elif classes:
        rank = max(rank, 0)
    if rank == 1 and wide:
        rank = 2
    return ("BIGINT", "DOUBLE", "VARCHAR")[rank] if rank >= 0 else "VARCHAR"


@settings(max_examples=examples(20))
@given(
    declared=st.lists(st.sampled_from(SQLITE_DECLARED), min_size=1, max_size=5),
    rows=st.lists(st.lists(sqlite_values, min_size=5, max_size=5), min_size=0, max_size=6),
)
def test_sqlite_values_of_any_storage_class_load_exactly(tmp_path, etl_home, declared, rows):
    columns = [f"c{i}" for i in range(len(declared))]
    ddl = f"CREATE TABLE t (id INTEGER, {', '.join(f'{c} {d}' for c, d in zip(columns, declared))})"
    path = tmp_path / "source.sqlite"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as con:
        con.execute(ddl)
        con.executemany(
            f"INSERT INTO t VALUES (?{', ?' * len(columns)})", [(i, *r[: len(columns)]) for i, r in enumerate(rows)]
        )
        # What SQLite holds after its affinities converted what was inserted: the source's truth.
        held = {c: con.execute(f"SELECT {c}, typeof({c}) FROM t ORDER BY id").fetchall() for c in columns}
    con.close()
    loaded = load("sqlite", {"path": str(path)}, table="t")
    assert not loaded.rejected and len(loaded.rows) == len(rows)
    for c, d in zip(columns, declared):
        expected = sqlite_expected_type(d, held[c])
        assert loaded.types[c] == expected, (c, d, held[c])
        for i, (value, kind) in enumerate(held[c]):
            got = loaded.rows[i][c][0]
            if value is None:
                assert got is None
            elif expected == "VARCHAR":
                assert got == (repr(value) if kind == "real" else str(value))
            elif expected == "DOUBLE":
                assert isinstance(got, float) and same_float(got, float(value)) and got == value
            else:
                assert got == value and type(got) is type(value)


# --- MariaDB / MySQL ---------------------------------------------------------------------------


def mysql_options(db: dict) -> dict:
    secret = {"password": {"env": "ETL_TEST_MYSQL_PASSWORD"}} if db["password"] else {}
    return {"host": db["host"], "port": db["port"], "database": db["database"], "user": db["user"], **secret}


def mysql_execute(db: dict, *statements: str, rows: list[tuple] | None = None) -> None:
    conn = pymysql.connect(**db, autocommit=True, charset="utf8mb4")
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")  # zero dates, as older applications write them
            for sql in statements:
                if rows is not None and "%s" in sql:
                    cur.executemany(sql, rows)
                else:
                    cur.execute(sql)
    finally:
        conn.close()


def test_mysql_types_load_exactly(mariadb_database, etl_home):
    db = mariadb_database
    mysql_execute(
        db,
        """CREATE TABLE t (id INT PRIMARY KEY, price DECIMAL(10,2), whole DECIMAL(10,0),
           unsigned_price DECIMAL(10,2) UNSIGNED, fraction DECIMAL(1,1), wide DECIMAL(65,30), flags BIT(64),
           flag BIT(1), counter BIGINT UNSIGNED, small BIGINT,
           yr YEAR, span TIME(6), moment DATETIME(6), day DATE, single FLOAT, fixed FLOAT(7,4), dbl DOUBLE,
           name VARCHAR(20) COLLATE utf8mb4_bin, raw VARBINARY(10), body TEXT, data BLOB, doc JSON,
           choice ENUM('a','b'), options SET('x','y'), emoji VARCHAR(10), latin VARCHAR(10) CHARACTER SET latin1,
           padded CHAR(5), place GEOMETRY)""",
        """INSERT INTO t VALUES (1, -12345678.91, 1234567891, 99999999.99, -0.9,
           -12345678901234567890123456789012345.123456789012345678901234567891,
           b'1111111111111111111111111111111111111111111111111111111111111111',
           b'1', 18446744073709551615, -9223372036854775808, 2155, '-838:59:59.000000', '2024-02-29 23:59:59.999999',
           '1000-01-01', 3.14159274, 1.2346, 0.30000000000000004, 'AbC', x'00ff', 'text é', x'deadbeef',
           '{"a": [1, 2.50]}',
           'b', 'y,x', '😀é\u0301', 'é', 'ab  ', ST_GeomFromText('POINT(1 2)'))""",
    )
    loaded = load("mysql", mysql_options(db), table="t")
    assert loaded.types == {
        "id": "BIGINT",
        "price": "DECIMAL(10,2)",
        "whole": "DECIMAL(10,0)",
        "unsigned_price": "DECIMAL(10,2)",
        "fraction": "DECIMAL(1,1)",
        "wide": "VARCHAR",
        "flags": "UBIGINT",
        "flag": "UBIGINT",
        "counter": "UBIGINT",
        "small": "BIGINT",
        "yr": "BIGINT",
        "span": "INTERVAL",
        "moment": "TIMESTAMP",
        "day": "DATE",
        "single": "DOUBLE",
        "fixed": "DOUBLE",
        "dbl": "DOUBLE",
        "name": "VARCHAR",
        "raw": "BLOB",
        "body": "VARCHAR",
        "data": "BLOB",
        "doc": "VARCHAR",
        "choice": "VARCHAR",
        "options": "VARCHAR",
        "emoji": "VARCHAR",
        "latin": "VARCHAR",
        "padded": "VARCHAR",
        "place": "BLOB",
    }
    row = {name: value for name, (value, _) in loaded.rows[1].items()}
    assert row["price"] == Decimal("-12345678.91") and row["whole"] == 1234567891 and row["fraction"] == Decimal("-0.9")
    assert row["wide"] == "-12345678901234567890123456789012345.123456789012345678901234567891"
    assert row["flags"] == 2**64 - 1 and row["flag"] == 1 and row["counter"] == 2**64 - 1 and row["small"] == -(2**63)
    assert row["yr"] == 2155 and row["span"] == -timedelta(hours=838, minutes=59, seconds=59)
    assert row["moment"] == datetime(2024, 2, 29, 23, 59, 59, 999999) and row["day"] == date(1000, 1, 1)
    assert row["single"] == single(3.14159274) and row["fixed"] == single(1.2346)  # the stored float32, not 6 digits
    assert row["dbl"] == 0.30000000000000004
    assert (row["name"], row["raw"], row["body"], row["data"]) == ("AbC", b"\x00\xff", "text é", b"\xde\xad\xbe\xef")
    assert (row["doc"], row["choice"], row["options"]) == ('{"a": [1, 2.50]}', "b", "x,y")
    assert (row["emoji"], row["latin"], row["padded"]) == (
        "😀é\u0301",
        "é",
        "ab",
    )  # CHAR drops trailing spaces in MySQL
    assert row["place"][4:] == bytes.fromhex("0101000000000000000000f03f0000000000000040")  # SRID, then WKB
    assert any("column 'wide': DECIMAL(65,30) is wider than DuckDB's DECIMAL" in line for line in loaded.logs)


def test_a_mysql_zero_date_rejects_its_row_with_the_reason(mariadb_database, etl_home):
    db = mariadb_database
    mysql_execute(
        db,
        "CREATE TABLE t (id INT, day DATE, moment DATETIME, stamp TIMESTAMP NULL)",
        "INSERT INTO t VALUES (1, '2024-05-01', '2024-05-01 10:00:00', '2024-05-01 10:00:00'), "
        "(2, '0000-00-00', '2024-05-01 10:00:00', NULL), (3, '2024-00-15', '0000-00-00 00:00:00', '0000-00-00 "
        "00:00:00')",
    )
    loaded = load("mysql", mysql_options(db), table="t")
    assert loaded.types == {"id": "BIGINT", "day": "DATE", "moment": "TIMESTAMP", "stamp": "TIMESTAMP"}
    assert list(loaded.rows) == [1] and loaded.rows[1]["day"][0] == date(2024, 5, 1)
    assert loaded.rejected == {
        2: ["day: not a valid DATE"],
        3: ["day: not a valid DATE", "moment: not a valid TIMESTAMP", "stamp: not a valid TIMESTAMP"],
    }


def test_a_mysql_float_in_a_query_loads_as_the_stored_single_precision_value(mariadb_database, etl_home):
    db = mariadb_database
    mysql_execute(db, "CREATE TABLE t (id INT, f FLOAT)", "INSERT INTO t VALUES (1, 16777217), (2, 0.1), (3, -3.4e38)")
    loaded = load("mysql", mysql_options(db), query="SELECT id, f, f * 2 AS twice FROM t")
    assert loaded.types == {"id": "BIGINT", "f": "DOUBLE", "twice": "DOUBLE"}  # FLOAT widens to DOUBLE exactly
    assert [loaded.rows[i]["f"][0] for i in (1, 2, 3)] == [16777216.0, single(0.1), single(-3.4e38)]


MYSQL_INTS = [("TINYINT", 8), ("SMALLINT", 16), ("MEDIUMINT", 24), ("INT", 32), ("BIGINT", 64)]


@st.composite
def mysql_kind(draw):
    """(DDL type, strategy of (value to insert, expected value), DuckDB type)."""
    choice = draw(
        st.sampled_from(
            [
                "int",
                "decimal",
                "float",
                "double",
                "bit",
                "year",
                "date",
                "datetime",
                "time",
                "varchar",
                "text",
                "varbinary",
                "json",
                "set",
            ]
        )
    )
    if choice == "int":
        name, bits = draw(st.sampled_from(MYSQL_INTS))
        unsigned = draw(st.booleans())
        low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        duck = "UBIGINT" if unsigned and bits == 64 else "BIGINT"
        return f"{name}{' UNSIGNED' if unsigned else ''}", st.integers(low, high).map(lambda v: (v, v)), duck
    if choice == "decimal":
        precision = draw(st.integers(1, 65))
        scale = draw(st.integers(0, min(precision, 30)))
        to_value = decimals(precision, scale)
        if precision <= 38:
            return f"DECIMAL({precision},{scale})", to_value.map(lambda d: (d, d)), f"DECIMAL({precision},{scale})"
        return f"DECIMAL({precision},{scale})", to_value.map(lambda d: (d, format(d, "f"))), "VARCHAR"
    if choice == "float":
        floats = float32s(finite=True).filter(lambda f: f != 0 or math.copysign(1, f) > 0)
        return "FLOAT", floats.map(lambda f: (f, f)), "DOUBLE"
    if choice == "double":
        floats = float64s(finite=True).filter(lambda f: f != 0 or math.copysign(1, f) > 0)
        return "DOUBLE", floats.map(lambda f: (f, f)), "DOUBLE"
    if choice == "bit":
        width = draw(st.integers(1, 64))
        return f"BIT({width})", st.integers(0, 2**width - 1).map(lambda v: (v, v)), "UBIGINT"
    if choice == "year":
        return "YEAR", st.one_of(st.just(0), st.integers(1901, 2155)).map(lambda v: (v, v)), "BIGINT"
    if choice == "date":
        days = st.dates(date(1000, 1, 1)).map(lambda d: (d, d))
        return "DATE", st.one_of(days, st.just(("0000-00-00", REJECT)), st.just(("2024-02-00", REJECT))), "DATE"
    if choice == "datetime":
        moments = st.datetimes(datetime(1000, 1, 1)).map(lambda d: (d, d))
        return "DATETIME(6)", st.one_of(moments, st.just(("0000-00-00 00:00:00", REJECT))), "TIMESTAMP"
    if choice == "time":
        limit = timedelta(hours=838, minutes=59, seconds=59)
        return "TIME(6)", st.timedeltas(-limit, limit).map(lambda t: (t, t)), "INTERVAL"
    if choice in ("varchar", "text"):
        text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
        return ("VARCHAR(40)" if choice == "varchar" else "TEXT"), text.map(lambda s: (s, s)), "VARCHAR"
    if choice == "varbinary":
        return "VARBINARY(40)", st.binary(max_size=40).map(lambda b: (b, b)), "BLOB"
    if choice == "json":
        docs = st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
            max_leaves=6,
        )
        return (
            "JSON",
            docs.map(lambda d: (json.dumps(d, ensure_ascii=False), json.dumps(d, ensure_ascii=False))),
            "VARCHAR",
        )
    members = ["x", "y", "ü😀"]
    subsets = st.sets(st.sampled_from(members)).map(
        lambda s: (",".join(sorted(s)), ",".join(m for m in members if m in s))
    )
    return "SET('x','y','ü😀')", subsets, "VARCHAR"


def generated_rows(kinds: list):
    """Rows of (value to insert, expected) for the columns of ``kinds``; one value in four is NULL."""
    return st.lists(
        st.tuples(*[st.one_of(values, values, values, st.just((None, None))) for _, values, _ in kinds]), max_size=6
    )


def check_rows(loaded: Loaded, kinds: list, rows: list[list]) -> None:
    """Each row loads with every value exactly as inserted, or is rejected with exactly the reasons
    of its values DuckDB cannot hold."""
    for c, (_, _, duck) in enumerate(kinds):
        assert loaded.types[f"c{c}"] == duck
    assert len(loaded.rows) + len(loaded.rejected) == len(rows)
    for i, row in enumerate(rows):
        reasons = sorted(
            f"c{c}: not a valid {kinds[c][2]}" for c, (_, expected) in enumerate(row) if expected is REJECT
        )
        if reasons:
            assert loaded.rejected.get(i) == reasons
            continue
        assert i in loaded.rows, (i, loaded.rejected.get(i))
        for c, (_, expected) in enumerate(row):
            got, text = loaded.rows[i][f"c{c}"]
            if expected is None or isinstance(expected, float):
                assert got is expected or same_float(got, expected), (c, got, expected)
            elif isinstance(expected, time) and expected.tzinfo is not None:  # aware times compare as instants
                assert (got.replace(tzinfo=None), got.utcoffset()) == (
                    expected.replace(tzinfo=None),
                    expected.utcoffset(),
                )
            elif isinstance(expected, str) and kinds[c][2] not in ("VARCHAR", "JSON"):
                assert text == expected, (c, text, expected)  # infinity, as DuckDB names it
            else:
                assert got == expected and (not isinstance(expected, Decimal) or str(got) == str(expected)), (
                    c,
                    got,
                    expected,
                )


@settings(max_examples=examples(15))
@given(data=st.data())
def test_mysql_values_at_the_edges_of_their_types_load_exactly(mariadb_database, etl_home, data):
    db = mariadb_database
    kinds = data.draw(st.lists(mysql_kind(), min_size=3, max_size=10))
    rows = data.draw(generated_rows(kinds))
    columns = ", ".join(f"c{c} {ddl}" for c, (ddl, _, _) in enumerate(kinds))
    mysql_execute(
        db,
        "DROP TABLE IF EXISTS t",
        f"CREATE TABLE t (id INT, {columns}) CHARACTER SET utf8mb4",
        f"INSERT INTO t VALUES (%s{', %s' * len(kinds)})",
        rows=[(i, *(v for v, _ in row)) for i, row in enumerate(rows)],
    )
    check_rows(load("mysql", mysql_options(db), table="t"), kinds, [list(r) for r in rows])


# --- PostgreSQL --------------------------------------------------------------------------------


def pg_options(db: dict) -> dict:
    return {"host": db["host"], "port": db["port"], "database": db["dbname"], "user": db["user"]}


def pg_execute(db: dict, *statements: str, rows: list[tuple] | None = None) -> None:
    conn = psycopg2.connect(**db)
    try:
        with conn, conn.cursor() as cur:
            for sql in statements:
                if rows is not None and "%s" in sql:
                    cur.executemany(sql, rows)
                else:
                    cur.execute(sql)
    finally:
        conn.close()


def test_a_postgres_numeric_without_precision_loads_as_its_exact_text_with_a_notice(postgres_database, etl_home):
    """The defect: numeric without a typmod was cast to DOUBLE, 12345678901234567.89 to 1.2345678901234568e+16."""
    pg_execute(
        postgres_database,
        "CREATE TABLE t (id INT, amount NUMERIC, price NUMERIC(12,2))",
        "INSERT INTO t VALUES (1, 12345678901234567.89, 1.5), (2, 'NaN', NULL), (3, '-Infinity', NULL), (4, 1e-30, 0)",
    )
    loaded = load("postgres", pg_options(postgres_database), table="public.t")
    assert loaded.types == {"id": "INTEGER", "amount": "VARCHAR", "price": "DECIMAL(12,2)"}
    assert [loaded.rows[i]["amount"][0] for i in (1, 2, 3, 4)] == [
        "12345678901234567.89",
        "NaN",
        "-Infinity",
        "0.000000000000000000000000000001",
    ]
    notice = (
        "column 'amount': numeric without precision: loaded as text; "
        "declare a decimal(p,s) target column to load it as a number"
    )
    assert any(notice in line for line in loaded.logs), loaded.logs
    # Declared as a decimal target, the text is cast to it.
    mapped = load(
        "postgres",
        pg_options(postgres_database),
        table="public.t",
        columns={"id": {"type": "integer"}, "amount": {"type": "decimal(38,2)"}},
    )
    assert mapped.types["amount"] == "DECIMAL(38,2)" and mapped.rows[1]["amount"][0] == Decimal("12345678901234567.89")


def test_postgres_types_load_exactly_or_as_their_text(postgres_database, etl_home):
    db = postgres_database
    pg_execute(
        db,
        "CREATE EXTENSION IF NOT EXISTS citext",
        "CREATE TYPE mood AS ENUM ('sad', 'happy')",
        "CREATE TYPE pair AS (a int, b text)",
        "CREATE DOMAIN positive AS int CHECK (VALUE > 0)",
        """CREATE TABLE t (id int, wide numeric(50,10), rounded numeric(5,-2), tiny numeric(3,5), cash money,
           span interval, flags bit(4), bits varbit, grid int[], words text[], stamps timestamp[], couple pair,
           feeling mood, host inet, net cidr, ident uuid, raw bytea, doc xml, wall timetz, js json, jb jsonb,
           name citext, count positive, object oid, midnight time, padded char(4), late timestamp, early timestamptz,
           first date)""",
        """INSERT INTO t VALUES (1, 12.5, 12300, 0.00123, '-92233720368547758.08', '1 year 2 mons -3 days 04:05:06.789',
           B'1010', B'101', '{{1,2},{3,NULL}}', ARRAY['a', 'b,c', NULL], ARRAY['infinity'::timestamp], ROW(1, 'x y'),
           'happy', '192.168.0.1/24', '10.0.0.0/8', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff',
           '<a>x</a>', '10:00:00+05:30', '{"a": 1.50}', '{"a": 1.50}', 'AbC', 5, 4294967295, '24:00:00', 'ab',
           'infinity', '0044-03-15 10:00:00.5+00 BC', '-infinity')""",
    )
    loaded = load("postgres", pg_options(db), table="public.t")
    assert loaded.types == {
        "id": "INTEGER",
        "wide": "VARCHAR",
        "rounded": "DECIMAL(7,0)",
        "tiny": "DECIMAL(5,5)",
        "cash": "DECIMAL(19,2)",
        "span": "INTERVAL",
        "flags": "VARCHAR",
        "bits": "VARCHAR",
        "grid": "VARCHAR",
        "words": "VARCHAR",
        "stamps": "VARCHAR",
        "couple": "VARCHAR",
        "feeling": "VARCHAR",
        "host": "VARCHAR",
        "net": "VARCHAR",
        "ident": "UUID",
        "raw": "BLOB",
        "doc": "VARCHAR",
        "wall": "TIME WITH TIME ZONE",
        "js": "JSON",
        "jb": "JSON",
        "name": "VARCHAR",
        "count": "INTEGER",
        "object": "BIGINT",
        "midnight": "TIME",
        "padded": "VARCHAR",
        "late": "TIMESTAMP",
        "early": "TIMESTAMP WITH TIME ZONE",
        "first": "DATE",
    }
    row = loaded.rows[1]
    value = {name: v for name, (v, _) in row.items()}
    text = {name: t for name, (_, t) in row.items()}
    assert value["wide"] == "12.5000000000" and value["rounded"] == 12300 and value["tiny"] == Decimal("0.00123")
    assert value["cash"] == Decimal("-92233720368547758.08")
    assert text["span"] == "1 year 2 months -3 days 04:05:06.789"
    assert (value["flags"], value["bits"], value["grid"], value["words"]) == (
        "1010",
        "101",
        "{{1,2},{3,NULL}}",
        '{a,"b,c",NULL}',
    )
    assert (value["stamps"], value["couple"], value["feeling"]) == ("{infinity}", '(1,"x y")', "happy")
    assert (value["host"], value["net"], str(value["ident"])) == (
        "192.168.0.1/24",
        "10.0.0.0/8",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    )
    assert (value["raw"], value["doc"], text["wall"]) == (b"\x00\xff", "<a>x</a>", "10:00:00+05:30")
    assert (value["js"], value["jb"], value["name"], value["count"]) == ('{"a": 1.50}', '{"a": 1.50}', "AbC", 5)
    assert (value["object"], text["midnight"], value["padded"]) == (4294967295, "24:00:00", "ab  ")
    assert (text["late"], text["early"], text["first"]) == ("infinity", "0044-03-15 (BC) 10:00:00.5+00", "-infinity")
    assert not loaded.rejected


def test_postgres_values_duckdb_cannot_hold_reject_their_rows_or_refuse_the_load(postgres_database, etl_home):
    db = postgres_database
    pg_execute(
        db,
        "CREATE TABLE t (id int, price numeric(10,2), late timestamp, day date)",
        "INSERT INTO t VALUES (1, 'NaN', '2024-01-01', '2024-01-01'), (2, 1.5, '294276-12-31 23:59:59', 'infinity'), "
        "(3, 2.5, '294247-01-10 04:00:54.775807', '2024-01-01'), (4, 3.5, '2024-06-01 12:00:00.000001', '4713-01-01 "
        "BC')",
        "CREATE TABLE spans (id int, span interval)",
        "INSERT INTO spans VALUES (1, '1 day'), (2, '3000000 hours')",
    )
    loaded = load("postgres", pg_options(db), table="public.t")
    assert loaded.rejected == {
        1: ["price: not a valid DECIMAL(10,2)"],
        2: ["late: not a valid TIMESTAMP"],
        3: ["late: not a valid TIMESTAMP"],  # one past DuckDB's last finite timestamp, which would read as infinity
    }
    assert (
        loaded.rows[4]["late"][0] == datetime(2024, 6, 1, 12, 0, 0, 1) and loaded.rows[4]["day"][1] == "4713-01-01 (BC)"
    )
    with pytest.raises(SourceError, match=r"reading failed: column 'span' holds intervals longer than 2,562,047 hours"):
        load("postgres", pg_options(db), table="public.spans")


PG_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # PostgreSQL text holds no NUL
OFFSETS = st.integers(-15 * 60 + 1, 15 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def pg_kind(draw):
    """(DDL type, strategy of (value to insert, expected value), DuckDB type)."""
    choice = draw(
        st.sampled_from(
            [
                "smallint",
                "int",
                "bigint",
                "real",
                "double",
                "numeric(p,s)",
                "numeric",
                "money",
                "text",
                "bytea",
                "bool",
                "date",
                "timestamp",
                "timestamptz",
                "time",
                "timetz",
                "interval",
                "uuid",
                "jsonb",
                "int[]",
                "oid",
                "varbit",
            ]
        )
    )
    same = lambda s: s.map(lambda v: (v, v))  # noqa: E731
    if choice in ("smallint", "int", "bigint"):
        bits = {"smallint": 16, "int": 32, "bigint": 64}[choice]
        return (
            choice,
            same(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)),
            {16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}[bits],
        )
    if choice == "real":
        return "real", float32s().map(lambda f: (repr(f), f)), "DOUBLE"  # as text: (-0.0)::real is +0
    if choice == "double":
        return "double precision", float64s().map(lambda f: (repr(f), f)), "DOUBLE"
    if choice == "numeric(p,s)":
        precision = draw(st.integers(1, 38))
        scale = draw(st.integers(0, precision))
        values = st.one_of(decimals(precision, scale).map(lambda d: (format(d, "f"), d)), st.just(("NaN", REJECT)))
        return f"numeric({precision},{scale})", values, f"DECIMAL({precision},{scale})"
    if choice == "numeric":
        plain = st.tuples(st.sampled_from(["", "-"]), st.integers(0, 10**40), st.text("0123456789", max_size=25)).map(
            pg_numeric_text
        )
        special = st.sampled_from([("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity")])
        return "numeric", st.one_of(plain, special), "VARCHAR"
    if choice == "money":
        cents = st.integers(-(2**63), 2**63 - 1).map(lambda n: Decimal(n).scaleb(-2, Context(prec=100)))
        return "money", cents.map(lambda d: (format(d, "f"), d)), "DECIMAL(19,2)"
    if choice == "text":
        return "text", same(st.text(PG_TEXT)), "VARCHAR"
    if choice == "bytea":
        return "bytea", st.binary().map(lambda b: (psycopg2.Binary(b), b)), "BLOB"
    if choice == "bool":
        return "boolean", same(st.booleans()), "BOOLEAN"
    infinities = st.sampled_from([("infinity", "infinity"), ("-infinity", "-infinity")])
    if choice == "date":
        return "date", st.one_of(same(st.dates()), infinities), "DATE"
    if choice == "timestamp":
        beyond = st.just(("294276-12-31 23:59:59", REJECT))
        return "timestamp", st.one_of(same(st.datetimes()), infinities, beyond), "TIMESTAMP"
    if choice == "timestamptz":
        aware = st.datetimes(datetime(2, 1, 1), datetime(9998, 12, 31), timezones=OFFSETS)
        return "timestamptz", st.one_of(same(aware), infinities), "TIMESTAMP WITH TIME ZONE"
    if choice == "time":
        return "time", same(st.times()), "TIME"
    if choice == "timetz":
        return "timetz", st.times(timezones=OFFSETS).map(lambda t: (t.isoformat(), t)), "TIME WITH TIME ZONE"
    if choice == "interval":
        return "interval", same(st.timedeltas(timedelta(days=-(10**6)), timedelta(days=10**6))), "INTERVAL"
    if choice == "uuid":
        return "uuid", st.uuids().map(lambda u: (str(u), u)), "UUID"
    if choice == "jsonb":
        docs = st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(PG_TEXT, max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(PG_TEXT, max_size=3), inner, max_size=3)
            ),
            max_leaves=6,
        )
        return "jsonb", docs.map(lambda d: (json.dumps(d), JsonDoc(d))), "JSON"
    if choice == "int[]":
        flat = st.lists(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)), max_size=4)
        grid = st.integers(1, 3).flatmap(
            lambda n: st.lists(st.lists(st.integers(-9, 9), min_size=n, max_size=n), min_size=1, max_size=3)
        )
        return "int[]", st.one_of(flat, grid).map(lambda a: (a, pg_array_text(a))), "VARCHAR"
    if choice == "oid":
        return "oid", same(st.integers(0, 2**32 - 1)), "BIGINT"
    return "varbit", same(st.text("01", max_size=70)), "VARCHAR"


def pg_numeric_text(parts: tuple[str, int, str]) -> tuple[str, str]:
    """A numeric literal and PostgreSQL's text of it: digits as written, no negative zero."""
    sign, whole, fraction = parts
    literal = f"{sign}{whole}" + (f".{fraction}" if fraction else "")
    zero = whole == 0 and not fraction.strip("0")
    return literal, literal.lstrip("-") if zero else literal


def pg_array_text(array: list) -> str:
    return (
        "{"
        + ",".join(pg_array_text(v) if isinstance(v, list) else "NULL" if v is None else str(v) for v in array)
        + "}"
    )


@dataclass(frozen=True)
class JsonDoc:
    """A JSON document compared by what it says, not how it is written: jsonb normalizes spacing
    and holds numbers as numeric (2.595935819049459e+16 is 25959358190494590 to it)."""

    doc: object

    def __eq__(self, loaded) -> bool:
        def read(text: str):
            return json.loads(text, parse_float=Decimal, parse_int=Decimal)

        return isinstance(loaded, str) and read(loaded) == read(json.dumps(self.doc))


@settings(max_examples=examples(20))
@given(data=st.data())
def test_postgres_values_at_the_edges_of_their_types_load_exactly(postgres_database, etl_home, data):
    db = postgres_database
    kinds = data.draw(st.lists(pg_kind(), min_size=3, max_size=10))
    rows = data.draw(generated_rows(kinds))
    columns = ", ".join(f"c{c} {ddl}" for c, (ddl, _, _) in enumerate(kinds))
    casts = ", ".join(f"(%s)::{ddl}" for ddl, _, _ in kinds)  # parenthesized: -32768::smallint is -(32768::smallint)
    pg_execute(
        db,
        "DROP TABLE IF EXISTS t",
        f"CREATE TABLE t (id int, {columns})",
        f"INSERT INTO t VALUES (%s, {casts})",
        rows=[(i, *(v for v, _ in row)) for i, row in enumerate(rows)],
    )
    check_rows(load("postgres", pg_options(db), table="public.t"), kinds, [list(r) for r in rows])


# --- DuckDB files ------------------------------------------------------------------------------


def test_duckdb_file_types_load_exactly(tmp_path, etl_home):
    path = str(tmp_path / "source.duckdb")
    exprs = {
        "id": "1",
        "huge": "170141183460469231731687303715884105727::HUGEINT",
        "least": "(-170141183460469231731687303715884105727 - 1)::HUGEINT",
        "uhuge": "340282366920938463463374607431768211455::UHUGEINT",
        "dec": "-123.4500000000::DECIMAL(38,10)",
        "span": "INTERVAL '3000000 hours'",
        "spans": "[INTERVAL '3000000 hours', INTERVAL '-1 day']",
        "nanos": "'2024-01-01 10:00:00.123456789'::TIMESTAMP_NS",
        "aware": "'2024-01-01 10:00:00+02'::TIMESTAMPTZ",
        "wall": "'10:00:00+05:30'::TIMETZ",
        "feeling": "'happy'::ENUM('sad', 'happy')",
        "ident": "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::UUID",
        "bits": "'1010'::BIT",
        "big": "'123456789012345678901234567890123456789012345'::BIGNUM",
        "forever": "'infinity'::DATE",
        "doc": "'{\"a\":1}'::JSON",
        "nothing": "NULL",
        "huges": "[170141183460469231731687303715884105727::HUGEINT]",
        "walls": "['10:00:00+05:30'::TIMETZ]",
        "nested": "[[1], [2, 3]]",
        "record": "{'a': 1, 'b': 'x'}",
    }
    with duckdb.connect(path) as con:
        con.execute("CREATE TABLE t AS SELECT " + ", ".join(f"{v} AS {k}" for k, v in exprs.items()))
        source_types = dict(
            con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 't'").fetchall()
        )
        source_text = dict(zip(exprs, con.execute("SELECT COLUMNS(*)::VARCHAR FROM t").fetchall()[0]))
    loaded = load("duckdb", {"path": path}, table="t")
    # ENUM, NULL and nested types whose name has a space (STRUCT, TIMETZ[]) load as their text.
    text_instead = {"feeling": "VARCHAR", "nothing": "VARCHAR", "record": "VARCHAR", "walls": "VARCHAR"}
    assert loaded.types == source_types | text_instead
    assert {name: t for name, (_, t) in loaded.rows[1].items()} == source_text


@settings(max_examples=examples(15))
@given(data=st.data())
def test_duckdb_file_values_at_the_edges_of_their_types_load_exactly(tmp_path, etl_home, data):
    kinds = data.draw(st.lists(duckdb_kind(), min_size=3, max_size=10))
    rows = data.draw(generated_rows(kinds))
    path = tmp_path / "source.duckdb"
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE t (id INTEGER, {', '.join(f'c{c} {t}' for c, (t, _, _) in enumerate(kinds))})")
        for i, row in enumerate(rows):
            con.execute(f"INSERT INTO t VALUES (?{', ?' * len(kinds)})", [i, *(v for v, _ in row)])
    check_rows(load("duckdb", {"path": str(path)}, table="t"), kinds, [list(r) for r in rows])


@st.composite
def duckdb_kind(draw):
    """(DuckDB type, strategy of (value to insert, expected value), DuckDB type loaded)."""
    choice = draw(
        st.sampled_from(
            [
                "HUGEINT",
                "UHUGEINT",
                "DECIMAL",
                "DOUBLE",
                "FLOAT",
                "VARCHAR",
                "BLOB",
                "DATE",
                "TIMESTAMP",
                "TIMESTAMPTZ",
                "INTERVAL",
                "TIMETZ",
                "UUID",
                "HUGEINT[]",
                "UBIGINT",
            ]
        )
    )
    same = lambda s: s.map(lambda v: (v, v))  # noqa: E731
    if choice == "HUGEINT":
        return choice, st.integers(-(2**127), 2**127 - 1).map(lambda n: (str(n), n)), choice
    if choice == "UHUGEINT":
        return choice, st.integers(0, 2**128 - 1).map(lambda n: (str(n), n)), choice
    if choice == "UBIGINT":
        return choice, st.integers(0, 2**64 - 1).map(lambda n: (str(n), n)), choice
    if choice == "DECIMAL":
        precision = draw(st.integers(1, 38))
        scale = draw(st.integers(0, precision))
        return (
            f"DECIMAL({precision},{scale})",
            decimals(precision, scale).map(lambda d: (format(d, "f"), d)),
            f"DECIMAL({precision},{scale})",
        )
    if choice == "DOUBLE":
        return choice, same(float64s()), choice
    if choice == "FLOAT":
        return choice, same(float32s()), "DOUBLE"
    if choice == "VARCHAR":
        return choice, same(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))), choice
    if choice == "BLOB":
        return choice, same(st.binary()), choice
    infinities = st.sampled_from([("infinity", "infinity"), ("-infinity", "-infinity")])
    if choice == "DATE":
        return choice, st.one_of(same(st.dates()), infinities), choice
    if choice == "TIMESTAMP":
        return choice, st.one_of(same(st.datetimes()), infinities), choice
    if choice == "TIMESTAMPTZ":
        aware = st.datetimes(datetime(2, 1, 1), datetime(9998, 12, 31), timezones=OFFSETS)
        return choice, st.one_of(same(aware), infinities), "TIMESTAMP WITH TIME ZONE"
    if choice == "INTERVAL":
        # The time part beyond int64 nanoseconds too (~292 years), which Arrow cannot carry.
        beyond = st.integers(2**63 // 1000, 2**62)  # past int64 nanoseconds
        parts = st.tuples(
            st.integers(-(10**8), 10**8), st.one_of(st.integers(-(2**62), 2**62), beyond, beyond.map(lambda n: -n))
        )
        return (
            choice,
            parts.map(lambda p: (f"{p[0]} days {p[1]} microseconds", timedelta(days=p[0], microseconds=p[1]))),
            choice,
        )
    if choice == "TIMETZ":
        return choice, st.times(timezones=OFFSETS).map(lambda t: (t.isoformat(), t)), "TIME WITH TIME ZONE"
    if choice == "UUID":
        return choice, st.uuids().map(lambda u: (str(u), u)), choice
    lists = st.lists(st.one_of(st.none(), st.integers(-(2**127), 2**127 - 1)), max_size=3)
    return choice, lists.map(lambda xs: ([None if x is None else str(x) for x in xs], xs)), choice
