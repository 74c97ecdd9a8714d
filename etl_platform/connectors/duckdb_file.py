"""A DuckDB database file as a source, opened read-only."""

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from etl_platform.connectors.registry import register

if TYPE_CHECKING:
    pass

from etl_platform.connectors.sql import BATCH_ROWS, FileDatabaseOptions, SourceStream, SqlConnector


@register
class DuckdbConnector(SqlConnector):
    """Another DuckDB database file, opened read-only. Its Arrow export keeps every type when asked
    for lossless conversion (HUGEINT, UHUGEINT, TIMETZ, UUID, BIT, JSON would otherwise change
    type or value), except intervals: Arrow carries their time part in int64 nanoseconds (about
    292 years), so interval columns travel as DuckDB's text and are cast back. FLOAT is widened to
    DOUBLE (the load's type for it) exactly; ENUM loads as its text."""

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
            raise self._fail("opening", err) from err
        try:
            try:
                con.execute("SET arrow_lossless_conversion = true")
                exact_sql, hints = self._exact_select(con, sql)
                reader = con.sql(exact_sql).to_arrow_reader(BATCH_ROWS)
            except duckdb.Error as err:
                # a read's error can quote the rows' values, of sensitive columns too: its first line only
                raise self._fail("reading", err) from None
            yield SourceStream(reader, hints)
        finally:
            con.close()

    def _exact_select(self, con, sql: str) -> tuple[str, dict[str, str]]:
        """``sql`` with its interval columns (and those of DuckDB's NULL type) as text, FLOAT as
        DOUBLE, and the DuckDB types the text is cast back to."""
        relation = con.sql(sql)
        exprs, hints = [], {}
        for name, dtype in zip(relation.columns, (str(t) for t in relation.types), strict=True):
            column = f"__etl_source.{self.quote(name)}"
            if re.search(r"\bINTERVAL\b", dtype):
                hints[name] = dtype
                column = f"CAST({column} AS VARCHAR)"
            elif dtype.strip('"') == "NULL":
                column = f"CAST({column} AS VARCHAR)"
            elif dtype == "FLOAT":  # widened exactly here, not through its shortest text in the load
                column = f"CAST({column} AS DOUBLE)"
            exprs.append(f"{column} AS {self.quote(name)}")
        if all(e.startswith("__etl_source.") for e in exprs):
            return sql, hints
        return f"SELECT {', '.join(exprs)} FROM ({sql}) AS __etl_source", hints

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
