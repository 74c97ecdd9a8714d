"""PostgreSQL as a source: rows streamed as Arrow through ADBC's driver, values checked for exactness."""

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from etl_platform.connectors.registry import register
from etl_platform.secrets.references import describe as describe_secret
from etl_platform.secrets.references import reveal

if TYPE_CHECKING:
    pass

from etl_platform.connectors.sql import ServerOptions, SourceStream, SqlConnector


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

        from etl_platform.connectors import postgres_types
        from etl_platform.connectors.adbc_errors import KeptErrorStream

        with contextlib.ExitStack() as opened:
            try:
                database = opened.enter_context(adbc_driver_postgresql.connect(self.uri()))
                connection = opened.enter_context(adbc_driver_manager.AdbcConnection(database))
            except Exception as err:
                # the driver's error may hold the password: dropped, its codes kept
                raise self._fail("connecting", err) from None
            try:
                exact = postgres_types.exact_read(connection, sql, self.quote)
                statement = opened.enter_context(adbc_driver_manager.AdbcStatement(connection))
                statement.set_sql_query(exact.sql)
                handle, _ = statement.execute_query()
                capsule = handle.__arrow_c_stream__()
                stream = KeptErrorStream(capsule)
                opened.callback(stream.close)
            except Exception as err:
                # the driver's error may hold the password: dropped, its codes kept
                raise self._fail("reading", err, connected=True) from None
            try:
                yield SourceStream(stream.capsule, exact.hints, exact.notices)
            except Exception:
                if stream.error is None:
                    raise
                # DuckDB, which read the stream, passes on only the driver's message. The driver's error (and
                # DuckDB's, which repeats its words) may hold the password: dropped, its codes kept.
                raise self._fail("reading", stream.error, connected=True) from None

    def discover(self) -> dict[str, list[tuple[str, str]]]:
        import adbc_driver_postgresql.dbapi as adbc

        sql = (
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_schema, table_name, "
            "ordinal_position"
        )
        try:
            with adbc.connect(self.uri()) as conn, conn.cursor() as cur:
                cur.execute(sql)
                rows = cur.fetchall()
        except Exception as err:
            # the driver's error may hold the password: dropped, its codes kept
            raise self._fail("discovering tables", err) from None
        found: dict[str, list[tuple[str, str]]] = {}
        for schema, table, column, dtype in rows:
            found.setdefault(f"{schema}.{table}", []).append((column, dtype))
        return found
