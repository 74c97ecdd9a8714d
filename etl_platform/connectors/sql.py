"""Database connection kinds: postgres, mysql (MySQL and MariaDB), sqlite and duckdb.

Every kind reads a table or a query as a stream of Arrow record batches, so a table of
any size passes through bounded memory into DuckDB. PostgreSQL is read through ADBC
(binary COPY, columnar all the way); MySQL/MariaDB and SQLite through SQLAlchemy 2 with
a server-side cursor; DuckDB files natively. Drivers are imported only when a step reads.
"""

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from etl_platform.automation.failure_codes import FailureCodes, with_codes
from etl_platform.connectors.registry import Connector, ConnectorError, register
from etl_platform.secrets import SecretRef, describe as describe_secret, reveal, scrub
from etl_platform.spec import SourceSpec, SpecModel

if TYPE_CHECKING:
    from etl_platform.connectors.arrow_capsule import Column

BATCH_ROWS = 100_000


class SourceError(ConnectorError):
    """Reading from a database failed; the message names the connection, never a credential.
    ``codes`` are the driver's (SQLSTATE, MySQL error number, ...), for ``retries.classify``."""

    codes: FailureCodes = FailureCodes()


@dataclass
class SourceStream:
    """An open read: the Arrow stream (anything DuckDB scans: a pyarrow reader, an object with
    ``__arrow_c_stream__`` or its capsule), and DuckDB types for columns Arrow cannot say precisely."""

    reader: object
    type_hints: dict[str, str] = field(default_factory=dict)


class ServerOptions(SpecModel):
    host: str = Field("127.0.0.1", description="Server host name or address.")
    port: int | None = Field(None, description="Server port (default: the kind's usual port).")
    database: str = Field(description="Database to connect to.")
    user: str | None = Field(None, description="User name.")
    password: SecretRef | None = Field(None, description="Password, as {env: VAR} or {secret: name}.")
    connect_timeout_seconds: int = Field(10, gt=0, description="Give up connecting after this long.")


class FileDatabaseOptions(SpecModel):
    path: str = Field(description="Path of the database file.")


class SqlConnector(Connector):
    """A database read by SQL. Subclasses say how to connect and quote."""

    reads = "sql"
    quote_char: ClassVar[str] = '"'

    def quote(self, name: str) -> str:
        q = self.quote_char
        return q + name.replace(q, q + q) + q

    def relation(self, source: SourceSpec) -> str:
        """The source as something to SELECT from: a quoted table or the query as a subquery."""
        if source.table is not None:
            return ".".join(self.quote(part) for part in source.table.split("."))
        return f"({source.query.strip().rstrip(';')}) AS src"

    def select(
        self, source: SourceSpec, cursor_column: str | None = None, lower_bound: str | None = None,
        window: tuple[str, str, str] | None = None,
    ) -> str:
        """The SELECT a load runs; with a cursor bound, only rows at or after it (inclusive); with a
        partition's ``window`` (column, start, end), only rows with start <= column < end."""
        sql = f"SELECT * FROM {self.relation(source)}"
        conditions = []
        if cursor_column and lower_bound is not None:
            bound = lower_bound if re.fullmatch(r"-?\d+", lower_bound) else "'" + lower_bound.replace("'", "''") + "'"
            conditions.append(f"{self.quote(cursor_column)} >= {bound}")
        if window is not None:
            column, start, end = (self.quote(window[0]), *("'" + b.replace("'", "''") + "'" for b in window[1:]))
            conditions.append(f"{column} >= {start} AND {column} < {end}")
        return sql + (" WHERE " + " AND ".join(conditions) if conditions else "")

    def stream(self, sql: str) -> contextlib.AbstractContextManager[SourceStream]:
        raise NotImplementedError

    def discover(self) -> dict[str, list[tuple[str, str]]]:
        """Tables (``schema.table``) and their columns with the database's type names."""
        raise NotImplementedError

    def _fail(self, action: str, err: BaseException, *, connected: bool = False) -> SourceError:
        """The error to raise for the driver's ``err``: its first line, scrubbed, and its codes.
        ``connected``: it happened after the connection was open (a read, not a login)."""
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        failed = SourceError(scrub(f"{self.kind} connection {self.name}: {action} failed: {first}"))
        return with_codes(failed, err, connected=connected)


class SqlAlchemyConnector(SqlConnector):
    """Kinds read through SQLAlchemy 2 with a streaming (server-side) cursor."""

    def url(self):
        raise NotImplementedError

    def engine(self):
        import sqlalchemy

        return sqlalchemy.create_engine(self.url(), poolclass=sqlalchemy.pool.NullPool)

    @contextlib.contextmanager
    def stream(self, sql: str) -> Iterator[SourceStream]:
        try:
            engine = self.engine()
            conn = engine.connect().execution_options(stream_results=True, yield_per=BATCH_ROWS)
        except Exception as err:
            raise self._fail("connecting", err) from None
        try:
            try:
                result = conn.exec_driver_sql(sql)
                partitions = _KeepsError(result.partitions(BATCH_ROWS))
                reader = _rows_to_arrow(list(result.keys()), partitions, self._arrow_types(result))
            except SourceError:
                raise
            except Exception as err:
                raise self._fail("reading", err, connected=True) from None
            try:
                yield SourceStream(reader)
            except Exception:
                if partitions.error is None:
                    raise
                # DuckDB, which read the rows, passes on only the driver's message.
                raise self._fail("reading", partitions.error, connected=True) from None
        finally:
            conn.close()
            engine.dispose()

    def _arrow_types(self, result) -> dict[str, object]:
        return {}

    def discover(self) -> dict[str, list[tuple[str, str]]]:
        import sqlalchemy

        """Tables of the connection's database (its default schema) and their columns."""
        try:
            engine = self.engine()
            inspector = sqlalchemy.inspect(engine)
            found = {
                table: [(c["name"], str(c["type"])) for c in inspector.get_columns(table)]
                for table in inspector.get_table_names()
            }
            engine.dispose()
            return found
        except Exception as err:
            raise self._fail("discovering tables", err) from None


class _KeepsError:
    """Iterates ``partitions`` and keeps the driver's error if one fails."""

    def __init__(self, partitions):
        self.partitions = iter(partitions)
        self.error: BaseException | None = None

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self.partitions)
        except StopIteration:
            raise
        except Exception as err:
            self.error = err
            raise


def _rows_to_arrow(names: list[str], partitions, types: dict[str, object]):
    """Row tuples in partitions -> an Arrow stream. Column types come from the driver where it
    says them; otherwise from the first batch (a column with only NULLs there is text)."""
    import pyarrow as pa

    chunks = iter(partitions)
    first = next(chunks, [])
    columns = list(zip(*first)) if first else [() for _ in names]
    schema = pa.schema(
        [pa.field(n, types.get(n) or _infer(values)) for n, values in zip(names, columns, strict=True)]
    )

    def batches():
        if first:
            yield _batch(first, schema)
        for rows in chunks:
            yield _batch(rows, schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _infer(values) -> object:
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if not present:
        return pa.string()
    try:
        inferred = pa.array(present[:1000]).type
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.string()
    return pa.string() if pa.types.is_null(inferred) else inferred


def _batch(rows, schema):
    import pyarrow as pa

    arrays = []
    for i, f in enumerate(schema):
        values = [row[i] for row in rows]
        try:
            arrays.append(pa.array(values, type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            if pa.types.is_string(f.type):
                arrays.append(pa.array([None if v is None else str(v) for v in values], type=pa.string()))
            else:
                raise SourceError(f"column {f.name!r} holds values that are not {f.type} (first batch said so)") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class PostgresOptions(ServerOptions):
    sslmode: str | None = Field(None, description="libpq sslmode: disable, prefer, require, verify-full, ...")


@register
class PostgresConnector(SqlConnector):
    """PostgreSQL, read through ADBC: the server sends binary COPY, the driver hands out Arrow."""

    kind: ClassVar[str] = "postgres"
    Options = PostgresOptions

    def uri(self) -> str:
        from urllib.parse import quote

        o = self.options
        password = reveal(o.password)
        auth = quote(o.user or "", safe="") + (":" + quote(password, safe="") if password else "")
        query = f"?connect_timeout={o.connect_timeout_seconds}" + (f"&sslmode={o.sslmode}" if o.sslmode else "")
        return f"postgresql://{auth}{'@' if auth else ''}{o.host}:{o.port or 5432}/{quote(o.database, safe='')}{query}"

    def describe(self) -> str:
        o = self.options
        password = f":{describe_secret(o.password)}" if o.password else ""
        return f"postgresql://{o.user or ''}{password}@{o.host}:{o.port or 5432}/{o.database}"

    @contextlib.contextmanager
    def stream(self, sql: str) -> Iterator[SourceStream]:
        # ADBC's low-level API, its stream handed to DuckDB as it is: the DB-API module would
        # import pyarrow.dataset and pandas, and pyarrow alone (with numpy) costs a small
        # incremental load more than reading its rows.
        import adbc_driver_manager
        import adbc_driver_postgresql

        from etl_platform.connectors.adbc_errors import KeptErrorStream
        from etl_platform.connectors.arrow_capsule import stream_columns

        with contextlib.ExitStack() as opened:
            try:
                database = opened.enter_context(adbc_driver_postgresql.connect(self.uri()))
                connection = opened.enter_context(adbc_driver_manager.AdbcConnection(database))
            except Exception as err:
                raise self._fail("connecting", err) from None
            try:
                statement = opened.enter_context(adbc_driver_manager.AdbcStatement(connection))
                statement.set_sql_query(sql)
                handle, _ = statement.execute_query()
                capsule = handle.__arrow_c_stream__()
                hints = _type_hints(stream_columns(capsule))
                stream = KeptErrorStream(capsule)
                opened.callback(stream.close)
            except Exception as err:
                raise self._fail("reading", err, connected=True) from None
            try:
                yield SourceStream(stream.capsule, hints)
            except Exception:
                if stream.error is None:
                    raise
                # DuckDB, which read the stream, passes on only the driver's message.
                raise self._fail("reading", stream.error, connected=True) from None

    def discover(self) -> dict[str, list[tuple[str, str]]]:
        import adbc_driver_postgresql.dbapi as adbc

        sql = (
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_schema, table_name, ordinal_position"
        )
        try:
            with adbc.connect(self.uri()) as conn, conn.cursor() as cur:
                cur.execute(sql)
                rows = cur.fetchall()
        except Exception as err:
            raise self._fail("discovering tables", err) from None
        found: dict[str, list[tuple[str, str]]] = {}
        for schema, table, column, dtype in rows:
            found.setdefault(f"{schema}.{table}", []).append((column, dtype))
        return found


def _type_hints(columns: list["Column"]) -> dict[str, str]:
    """ADBC hands some PostgreSQL types over as opaque Arrow extension types, which DuckDB
    reads as their text storage (numeric, ...): the DuckDB type each should be cast to."""
    hints: dict[str, str] = {}
    for column in columns:
        if column.metadata.get("ARROW:extension:name") != "arrow.opaque":
            continue
        pg_type = column.metadata.get("POSTGRESQL:type", "")
        typmod = int(column.metadata.get("POSTGRESQL:typmod") or -1)
        if pg_type == "numeric":
            hints[column.name] = f"DECIMAL({(typmod - 4) >> 16},{(typmod - 4) & 0xFFFF})" if typmod > 4 else "DOUBLE"
        elif pg_type in ("json", "jsonb"):
            hints[column.name] = "JSON"
    return hints


class MysqlOptions(ServerOptions):
    charset: str = Field("utf8mb4", description="Connection character set.")


@register
class MysqlConnector(SqlAlchemyConnector):
    """MySQL and MariaDB through PyMySQL, with an unbuffered (server-side) cursor."""

    kind: ClassVar[str] = "mysql"
    Options = MysqlOptions
    quote_char: ClassVar[str] = "`"

    def url(self):
        import sqlalchemy

        o = self.options
        return sqlalchemy.URL.create(
            "mysql+pymysql",
            username=o.user,
            password=reveal(o.password),
            host=o.host,
            port=o.port or 3306,
            database=o.database,
            query={"charset": o.charset, "connect_timeout": str(o.connect_timeout_seconds)},
        )

    def describe(self) -> str:
        o = self.options
        password = f":{describe_secret(o.password)}" if o.password else ""
        return f"mysql://{o.user or ''}{password}@{o.host}:{o.port or 3306}/{o.database}"

    def _arrow_types(self, result) -> dict[str, object]:
        return {d[0]: t for d in result.cursor.description if (t := _mysql_arrow_type(d)) is not None}


def _mysql_arrow_type(description) -> object:
    """Arrow type for a MySQL column from its wire type code (None: infer from the values)."""
    import pyarrow as pa
    from pymysql.constants import FIELD_TYPE as T

    _, code, _, _, precision, scale, _ = description
    if code in (T.TINY, T.SHORT, T.LONG, T.LONGLONG, T.INT24, T.YEAR):
        return pa.int64()
    if code in (T.FLOAT, T.DOUBLE):
        return pa.float64()
    if code in (T.DECIMAL, T.NEWDECIMAL):
        # The wire reports the display length (digits plus sign and point), not the declared
        # precision; it is never smaller, so every value of the column fits.
        return pa.decimal128(min(max(precision or 38, 1), 38), scale or 0)
    if code == T.DATE:
        return pa.date32()
    if code in (T.DATETIME, T.TIMESTAMP):
        return pa.timestamp("us")
    if code in (T.VARCHAR, T.VAR_STRING, T.STRING, T.ENUM, T.SET, T.JSON):
        return pa.string()
    return None


@register
class SqliteConnector(SqlAlchemyConnector):
    kind: ClassVar[str] = "sqlite"
    Options = FileDatabaseOptions

    def url(self):
        return f"sqlite:///{Path(self.options.path).absolute()}"

    def describe(self) -> str:
        return f"sqlite:///{self.options.path}"


@register
class DuckdbConnector(SqlConnector):
    """Another DuckDB database file, opened read-only."""

    kind: ClassVar[str] = "duckdb"
    Options = FileDatabaseOptions

    def describe(self) -> str:
        return f"duckdb:///{self.options.path}"

    @contextlib.contextmanager
    def stream(self, sql: str) -> Iterator[SourceStream]:
        import duckdb

        try:
            con = duckdb.connect(str(Path(self.options.path).absolute()), read_only=True)
        except duckdb.Error as err:
            raise self._fail("opening", err) from None
        try:
            try:
                reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
            except duckdb.Error as err:
                raise self._fail("reading", err) from None
            yield SourceStream(reader)
        finally:
            con.close()

    def discover(self) -> dict[str, list[tuple[str, str]]]:
        import duckdb

        with duckdb.connect(str(Path(self.options.path).absolute()), read_only=True) as con:
            rows = con.execute(
                "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
                "WHERE NOT internal ORDER BY schema_name, table_name, column_index"
            ).fetchall()
        found: dict[str, list[tuple[str, str]]] = {}
        for schema, table, column, dtype in rows:
            found.setdefault(f"{schema}.{table}", []).append((column, dtype))
        return found
