"""Database connection kinds: postgres, mysql (MySQL and MariaDB), sqlite and duckdb.

Every kind reads a table or a query as a stream of Arrow record batches, so a table of
any size passes through bounded memory into DuckDB. PostgreSQL is read through ADBC
(binary COPY, columnar all the way); MySQL/MariaDB and SQLite through SQLAlchemy 2 with
a server-side cursor; DuckDB files natively. Drivers are imported only when a step reads.

Every column's type comes from what the source declares, decided before the first row is
read, and every value arrives exactly or its row is rejected: how each kind does it is in
postgres_types, mysql_types and sqlite_types, and in DuckdbConnector below."""

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from etl_platform.connectors.registry import Connector, ConnectorError
from etl_platform.errors import first_line
from etl_platform.failure_codes import FailureCodes, with_codes
from etl_platform.secrets.references import SecretRef, scrub
from etl_platform.spec.base import SpecModel
from etl_platform.spec.sources import SourceSpec

if TYPE_CHECKING:
    import sqlalchemy


BATCH_ROWS = 100_000


class SourceError(ConnectorError):
    """Reading from a database failed; the message names the connection, never a credential.
    ``codes`` are the driver's (SQLSTATE, MySQL error number, ...), for ``retries.classify``."""

    codes: FailureCodes = FailureCodes()


@dataclass
class SourceStream:
    """An open read: the Arrow stream (anything DuckDB scans: a pyarrow reader, an object with
    ``__arrow_c_stream__`` or its capsule), and DuckDB types for columns Arrow cannot say precisely
    (they arrive as text; a value that does not cast rejects its row). ``notices`` say, per column,
    where the load's type differs from the source's and why (numeric without precision as text, ...)."""

    reader: object
    type_hints: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


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

    def table_of(self, sql: str) -> list[str] | None:
        """The table (its name parts, unquoted) that a SELECT written by ``select`` reads; None for
        a query source or any other SQL."""
        q = re.escape(self.quote_char)
        part = f"{q}((?:[^{q}]|{q}{q})*){q}"
        found = re.match(f"SELECT \\* FROM {part}(?:\\.{part})?(?: WHERE |$)", sql)
        if not found:
            return None
        return [p.replace(self.quote_char * 2, self.quote_char) for p in found.groups() if p is not None]

    def select(
        self,
        source: SourceSpec,
        cursor_column: str | None = None,
        lower_bound: str | None = None,
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
        first = first_line(err)
        failed = SourceError(scrub(f"{self.kind} connection {self.name}: {action} failed: {first}"))
        return with_codes(failed, err, connected=connected)


class SqlAlchemyConnector(SqlConnector):
    """Kinds read through SQLAlchemy 2 with a streaming (server-side) cursor."""

    def url(self):
        raise NotImplementedError

    def engine(self):
        import sqlalchemy

        return sqlalchemy.create_engine(
            self.url(), poolclass=sqlalchemy.pool.NullPool, connect_args=self.connect_args()
        )

    def connect_args(self) -> dict:
        return {}

    def _open(self, conn: "sqlalchemy.Connection", sql: str, kept: "_KeepsError") -> SourceStream:
        """Run ``sql`` on the open connection; the stream of its rows (partitions wrapped by ``kept``,
        which keeps the driver's error), each column typed exactly."""
        raise NotImplementedError

    @contextlib.contextmanager
    def stream(self, sql: str) -> Iterator[SourceStream]:
        try:
            engine = self.engine()
            conn = engine.connect().execution_options(stream_results=True, yield_per=BATCH_ROWS)
        except Exception as err:
            # the driver's error may hold the password: dropped, its codes kept
            raise self._fail("connecting", err) from None
        try:
            try:
                kept = _KeepsError()
                read = self._open(conn, sql, kept)
            except SourceError:
                raise
            except Exception as err:
                # the driver's error may hold the password: dropped, its codes kept
                raise self._fail("reading", err, connected=True) from None
            try:
                yield read
            except Exception:
                if kept.error is None:
                    raise
                # DuckDB, which read the rows, passes on only the driver's message. The driver's error (and
                # DuckDB's, which repeats its words) may hold the password: dropped, its codes kept.
                raise self._fail("reading", kept.error, connected=True) from None
        finally:
            conn.close()
            engine.dispose()

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
            # the driver's error may hold the password: dropped, its codes kept
            raise self._fail("discovering tables", err) from None


class _KeepsError:
    """Iterates the partitions it wraps and keeps the driver's error if one fails."""

    def __init__(self):
        self.partitions = iter(())
        self.error: BaseException | None = None

    def wrap(self, partitions) -> "_KeepsError":
        self.partitions = iter(partitions)
        return self

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
