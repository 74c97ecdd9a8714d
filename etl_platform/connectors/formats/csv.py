"""CSV, read by DuckDB with the declared or sniffed dialect; rejected rows name their physical line."""

import re
from pathlib import Path

import duckdb

from etl_platform.connectors.formats.base import FileFormat, ReaderRejects, missing_columns, register_format, scan_path
from etl_platform.errors import first_line
from etl_platform.spec.columns import ColumnSpec
from etl_platform.sql import literal


@register_format
class CsvFormat(FileFormat):
    """CSV with a detected (or declared) dialect. Every column is read as text (our SQL converts
    it exactly; DuckDB's own CSV casts round and truncate), and the reader records lines it
    cannot parse (ragged rows, bad quoting) instead of failing the file."""

    name = "csv"
    asset_kind = "csv"
    records_rejects = True

    def first_data_line(self) -> int:
        return 1 + self.options.skip_lines + (1 if self.options.header else 0)

    CANDIDATE_DELIMITERS = (",", ";", "\t", "|")

    def columns(self, con: duckdb.DuckDBPyConnection, path: Path, dialect: dict | None = None) -> list[str]:
        # Sniff tolerantly: a few ragged rows must not hide the header (they are rejected later, by line).
        scan = f"read_csv({', '.join([*self._arguments(path, {}, dialect), 'ignore_errors=true'])})"
        return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]

    def inspect(
        self, con: duckdb.DuckDBPyConnection, path: Path, wanted: dict[str, ColumnSpec]
    ) -> tuple[list[str], dict]:
        """Detect the dialect; when detection misses the mapped columns (small files with
        ragged rows can fool the sniffer), try the usual delimiters before giving up."""
        quoting = self._lost_quotes(con, path)
        if quoting:
            # Read as quoted, or not at all: a file that cannot be is rejected whole, naming why.
            try:
                return self.columns(con, path, quoting), quoting
            except duckdb.Error as err:
                raise duckdb.InvalidInputException(
                    'its fields are quoted, but not all the same way (a quote escaped as \\" and as "" in one file?), '
                    "so they cannot be read without changing their values; declare source.csv.quote and "
                    f"source.csv.escape ({first_line(err)})"
                ) from err
        offered = self.columns(con, path)
        if self.options.delimiter is not None or not missing_columns(offered, wanted):
            return offered, {}
        for delimiter in self.CANDIDATE_DELIMITERS:
            try:
                candidate = self.columns(con, path, {"delim": delimiter})
            except duckdb.Error:
                continue
            if not missing_columns(candidate, wanted):
                return candidate, {"delim": delimiter}
        return offered, {}

    _QUOTED_FIELD = '(^|[{d}])"([^"\n]|"")*"($|[{d}])'  # a field that opens and closes with a quote
    _SAMPLE = 1 << 16

    def _lost_quotes(self, con: duckdb.DuckDBPyConnection, path: Path) -> dict:
        """The dialect with quotes, when the sniffer gave up on quoting although fields are quoted.

        One row escaped another way (``\\"`` among ``""``) makes DuckDB's sniffer read the whole
        file unquoted, and every quoted value would keep its quote marks. Quotes are then imposed
        (with the delimiter the sniffer found): the odd row is rejected, or the file if DuckDB
        cannot read it so, instead of every value changed."""
        if self.options.quote is not None:
            return {}
        try:
            found = con.execute(
                "SELECT Delimiter, Quote FROM "
                f"sniff_csv({', '.join([*self._arguments(path, {}, None), 'ignore_errors=true'])})"
            ).fetchall()[0]
        except duckdb.Error:
            return {}
        delimiter, quote = found
        if quote not in (None, "", "(empty)") or not delimiter:
            return {}
        with path.open("rb") as f:
            sample = f.read(self._SAMPLE).decode("utf-8", errors="replace")
        pattern = self._QUOTED_FIELD.format(d=re.escape(self.options.delimiter or delimiter))
        if not re.search(pattern, sample, flags=re.MULTILINE):
            return {}
        return {"delim": self.options.delimiter or delimiter, "quote": '"'}

    def scan(
        self,
        path: Path,
        columns: dict[str, ColumnSpec],
        rejects: ReaderRejects | None = None,
        dialect: dict | None = None,
    ) -> str:
        args = self._arguments(path, columns, dialect)
        if rejects:
            args += [
                "store_rejects=true",
                f"rejects_table={literal(rejects.errors)}",
                f"rejects_scan={literal(rejects.scans)}",
            ]
        return f"read_csv({', '.join(args)})"

    def csv_arguments(self, path: Path, dialect: dict | None) -> list[str]:
        """The reader's arguments for this file, as a scan passes them (for ``sniff_csv``)."""
        return self._arguments(path, {}, dialect)

    def _arguments(self, path: Path, columns: dict[str, ColumnSpec], dialect: dict | None) -> list[str]:
        opts = self.options
        args = [
            scan_path(path),
            f"header={str(opts.header).lower()}",
            f"skip={opts.skip_lines}",
            f"nullstr=[{', '.join(literal(s) for s in opts.null_strings)}]",
            "all_varchar=true",
            # A quoted empty field is an empty string; only an unquoted one is NULL (as PostgreSQL's COPY writes them).
            "allow_quoted_nulls=false",
        ]
        delimiter = opts.delimiter if opts.delimiter is not None else (dialect or {}).get("delim")
        if delimiter is not None:
            args.append(f"delim={literal(delimiter)}")
        quote_char = opts.quote if opts.quote is not None else (dialect or {}).get("quote")
        if quote_char is not None:
            args.append(f"quote={literal(quote_char)}")
        if opts.escape is not None:
            args.append(f"escape={literal(opts.escape)}")
        return args
