"""A SQLite file as a source, through SQLAlchemy."""

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from etl_platform.connectors.registry import register
from etl_platform.connectors.sql_rows import rows_to_arrow

if TYPE_CHECKING:
    pass

from etl_platform.connectors.sql import BATCH_ROWS, FileDatabaseOptions, SourceError, SourceStream, SqlAlchemyConnector


@register
class SqliteConnector(SqlAlchemyConnector):
    kind: ClassVar[str] = "sqlite"
    Options = FileDatabaseOptions

    def url(self):
        return f"sqlite:///{Path(self.options.path).absolute()}"

    def describe(self) -> str:
        return f"sqlite:///{self.options.path}"

    def _open(self, conn, sql: str, kept) -> SourceStream:
        from etl_platform.connectors import sqlite_types

        # One transaction: the scan for storage classes and the read see the same rows.
        conn.exec_driver_sql("BEGIN")
        exact_sql, names, readers, notices = sqlite_types.exact_read(conn, sql, self.quote, self.table_of(sql))
        result = conn.exec_driver_sql(exact_sql)
        if list(result.keys()) != names:
            raise SourceError(f"{self.kind} connection {self.name}: the result's columns changed while it was read")
        return SourceStream(rows_to_arrow(names, kept.wrap(result.partitions(BATCH_ROWS)), readers), {}, notices)
