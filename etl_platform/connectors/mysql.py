"""MySQL and MariaDB as a source, through SQLAlchemy and PyMySQL with a server-side cursor."""

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from etl_platform.connectors.registry import register
from etl_platform.connectors.sql_rows import rows_to_arrow
from etl_platform.secrets.references import describe as describe_secret
from etl_platform.secrets.references import reveal

if TYPE_CHECKING:
    pass

from etl_platform.connectors.sql import BATCH_ROWS, ServerOptions, SourceStream, SqlAlchemyConnector


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

    def connect_args(self) -> dict:
        from etl_platform.connectors import mysql_types

        return {"conv": mysql_types.decoders()}

    def _open(self, conn, sql: str, kept) -> SourceStream:
        from etl_platform.connectors import mysql_types

        exact_sql, floats = mysql_types.exact_select(conn, sql, self.quote)
        result = conn.exec_driver_sql(exact_sql)
        # PyMySQL's own field descriptors: the DB-API description leaves out charset and flags.
        readers, hints, notices = mysql_types.column_readers(result.cursor._result.fields, floats)
        return SourceStream(
            rows_to_arrow(list(result.keys()), kept.wrap(result.partitions(BATCH_ROWS)), readers), hints, notices
        )
