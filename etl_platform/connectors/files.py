"""File formats DuckDB reads natively, one class per format, in a string-keyed registry.

A format turns one file into a FROM-clause that DuckDB scans in parallel batches;
nothing here materializes rows in Python. Adding a format is one class and one
``register_format`` call.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import duckdb

from etl_platform.intake import paths
from etl_platform.spec.columns import ColumnSpec
from etl_platform.spec.sources import CsvOptions
from etl_platform.sql import json_lenient, literal, quote

# Columns a format's scan may deliver beside the data (see FileFormat).
LINE = "__etl_line"  # the row's line (or record) number in its file
PARSE_ERROR = "__etl_parse_error"  # why the line could not be parsed: the row is rejected whole, kind 'parse'
RAW_LINE = "__etl_raw_line"  # the line as it was, for the rejected table


@dataclass(frozen=True)
class ReaderRejects:
    """Names of the temp tables where a reader records rows it could not parse."""

    errors: str = "__reader_rejects"
    scans: str = "__reader_scans"


def scan_path(path: Path) -> str:
    """The SQL literal naming one file to a DuckDB reader. A name is never a pattern: a path
    DuckDB would glob (``[ab].csv``) is refused; intake gives such files a plain name first
    (``intake.paths.without_patterns``)."""
    if not paths.is_plain(path):
        raise duckdb.InvalidInputException(
            f"the path {str(path)!r} holds a glob character, which DuckDB would read as a pattern of file names"
        )
    return literal(str(path))


class FileFormat:
    """How to scan one kind of file."""

    name: ClassVar[str]
    # True when the reader records lines it cannot parse (ragged rows, bad quoting) instead of failing the file.
    records_rejects: ClassVar[bool] = False
    # True when the scan delivers stage.ROW_ERRORS: per row, why the reader could not give its values.
    reports_row_errors: ClassVar[bool] = False
    # True when the scan delivers LINE, each row's line number in the file.
    numbers_lines: ClassVar[bool] = False
    # True when the scan delivers PARSE_ERROR and RAW_LINE for lines it could not parse.
    reports_parse_errors: ClassVar[bool] = False

    def __init__(self, options: CsvOptions):
        self.options = options

    def first_data_line(self) -> int:
        """1-based line (or record) number of the first data row."""
        return 1

    def columns(self, con: duckdb.DuckDBPyConnection, path: Path, dialect: dict | None = None) -> list[str]:
        """Column names the file offers, without reading its rows."""
        scan = self.scan(path, {}, dialect=dialect)
        return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]

    def inspect(
        self, con: duckdb.DuckDBPyConnection, path: Path, wanted: dict[str, ColumnSpec]
    ) -> tuple[list[str], dict]:
        """The file's columns and the dialect to read it with."""
        return self.columns(con, path), {}

    def prepare(
        self, con: duckdb.DuckDBPyConnection, path: Path, columns: dict[str, ColumnSpec], dialect: dict
    ) -> dict:
        """Work to do on ``con`` before the file is scanned (after its inspection passed);
        returns the dialect to scan it with."""
        return dialect

    def scan(
        self,
        path: Path,
        columns: dict[str, ColumnSpec],
        rejects: ReaderRejects | None = None,
        dialect: dict | None = None,
    ) -> str:
        raise NotImplementedError


class CsvFormat(FileFormat):
    """CSV with a detected (or declared) dialect. Every column is read as text (our SQL converts
    it exactly; DuckDB's own CSV casts round and truncate), and the reader records lines it
    cannot parse (ragged rows, bad quoting) instead of failing the file."""

    name = "csv"
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
                    f"source.csv.escape ({str(err).splitlines()[0]})"
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


class ParquetFormat(FileFormat):
    name = "parquet"

    def scan(self, path, columns, rejects=None, dialect=None) -> str:
        return f"read_parquet({scan_path(path)})"


class _JsonFormat(FileFormat):
    """JSON objects, one record per line (NDJSON) or the elements of one array (JSON).

    Records are read line by line (element by element) and parsed by DuckDB, so a malformed
    line rejects only itself (kind 'parse', with its own line number and text) and the others
    load. Every field is taken as text (strings unquoted, numbers as written, nested values as
    JSON) and converted by our SQL, so a value of the wrong type rejects its row. DuckDB reads a
    number through a double, exact up to 15 significant digits but not in its spelling; records
    holding longer numbers, a number with an exponent, or a fraction in a field a text column
    reads, are read again in Python, where a number keeps its text as written.
    """

    numbers_lines = True
    reports_parse_errors = True
    _MAX_LINE = 16 * 1024 * 1024  # as DuckDB's JSON reader: a longer record rejects the file
    _LONG_NUMBER = "[0-9][0-9.]{15,}"  # 16+ digits: more than a double holds exactly
    _EXPONENT = "[0-9][eE][+-]?[0-9]"  # DuckDB would give 1000.0 for 1e3, which an integer column takes

    def _is_array(self, path: Path) -> bool:
        return False

    def _lines(self, path: Path) -> str:
        """(line number, text) of every record, blank lines included (they are not records)."""
        if self._is_array(path):
            content = f"(SELECT content FROM read_text({scan_path(path)}))"
            return f"(SELECT key::BIGINT + 1 AS {LINE}, value::VARCHAR AS line FROM json_each({content}))"
        # One column: the delimiter cannot appear in valid JSON (control characters are escaped there).
        csv = (
            f"read_csv({scan_path(path)}, header=false, columns={{'line': 'VARCHAR'}}, delim='\x1f\x1e\x1d\x1c', "
            "quote='', escape='', auto_detect=false, strict_mode=false, null_padding=true, "
            f"max_line_size={self._MAX_LINE})"
        )
        return f"(SELECT ordinality AS {LINE}, line FROM {csv} WITH ORDINALITY)"

    def columns(self, con, path, dialect=None) -> list[str]:
        return self.inspect(con, path, {})[0]

    def inspect(self, con, path, wanted):
        """The keys the file's records have (in order of first appearance), and which records
        need reading again to keep their numbers as written: numbers longer than a double holds,
        and a number with a fraction in a field a text column reads (DuckDB would give ``1.5`` for
        ``1.50``, ``100.0`` for ``1E2``)."""
        lines = self._lines(path)
        objects = f"SELECT {LINE}, line FROM {lines} WHERE CASE WHEN {_VALID} THEN json_type(line) END = 'OBJECT'"
        keys = [
            row[0]
            for row in con.execute(
                f"SELECT k FROM (SELECT unnest(json_keys(line)) AS k, {LINE} FROM ({objects})) GROUP BY k ORDER BY "
                f"min({LINE}), k"
            ).fetchall()
        ]
        texts = [
            c
            for name, col in wanted.items()
            if col.duckdb_type in ("VARCHAR", "JSON")
            for c in col.source_columns(name)
            if c in keys
        ]
        if self._is_array(path):  # an array is decoded whole (msgspec): when it has long numbers, or text columns
            pattern = literal(f"{self._LONG_NUMBER}|{self._EXPONENT}")
            long_numbers = bool(
                con.execute(f"SELECT regexp_matches(content, {pattern}) FROM read_text({scan_path(path)})").fetchall()[
                    0
                ][0]
            )
            return keys, {"exact_lines": "true" if long_numbers or texts else None}
        conditions = [
            f"regexp_matches(line, {literal(self._LONG_NUMBER)})",
            f"regexp_matches(line, {literal(self._EXPONENT)})",
        ]
        # A number, object or array a text or JSON column reads keeps its numbers as written.
        conditions += [f"json_type(line, {_pointer(k)}) IN ('DOUBLE', 'OBJECT', 'ARRAY')" for k in dict.fromkeys(texts)]
        exact = f"CASE WHEN {_VALID} THEN ({' OR '.join(conditions)}) ELSE false END"  # an invalid line is the scan's to reject
        found = con.execute(f"SELECT count(*) FROM ({objects}) WHERE {exact}").fetchall()[0][0]
        return keys, {"exact_lines": exact if found else None}

    def scan(self, path, columns, rejects=None, dialect=None) -> str:
        wanted = list(dict.fromkeys(c for name, col in columns.items() for c in col.source_columns(name)))
        pointers = "[" + ", ".join(_pointer(k) for k in wanted) + "]"
        # A record with the same key twice is ambiguous: rejected rather than one value picked.
        kind = (
            f"CASE WHEN {_VALID} THEN CASE WHEN json_type(line) = 'OBJECT' "
            "AND len(json_keys(line)) <> len(list_distinct(json_keys(line))) THEN 'DUPLICATE' ELSE json_type(line) END "
            "END"
        )
        fields = f"CASE WHEN __kind = 'OBJECT' THEN json_extract_string(line, {pointers}) END" if wanted else "NULL"
        exact = (dialect or {}).get("exact_table")
        values = [
            f"CASE WHEN e.{LINE} IS NOT NULL THEN e.{quote(k)} ELSE __fields[{i + 1}] END AS {quote(k)}"
            if exact
            else f"__fields[{i + 1}] AS {quote(k)}"
            for i, k in enumerate(wanted)
        ]
        reason = (
            "CASE WHEN __kind IS NULL THEN 'not valid JSON' WHEN __kind = 'DUPLICATE' THEN 'a key appears twice in the "
            "record' "
            "ELSE 'a JSON ' || lower(__kind) || ', not an object' END"
        )
        joined = f"LEFT JOIN {exact} AS e ON e.{LINE} = l.{LINE}" if exact else ""
        return (
            f"(SELECT l.{LINE}, {', '.join([*values, ''])}"
            f"CASE WHEN __kind IS DISTINCT FROM 'OBJECT' THEN {reason} END AS {PARSE_ERROR}, "
            f"CASE WHEN __kind IS DISTINCT FROM 'OBJECT' THEN l.line END AS {RAW_LINE} "
            f"FROM (SELECT {LINE}, line, {kind} AS __kind, {fields} AS __fields FROM {self._lines(path)} "
            f"WHERE line IS NOT NULL AND trim(line, ' \t\r') <> '') AS l {joined})"
        )

    def prepare(self, con, path: Path, columns, dialect: dict) -> dict:
        """Read the records holding long numbers again in Python (every digit kept) into a temp
        table of their fields' text; returns the dialect naming it."""
        exact_lines = (dialect or {}).get("exact_lines")
        if not exact_lines:
            return dialect
        import msgspec

        wanted = list(dict.fromkeys(c for name, col in columns.items() for c in col.source_columns(name)))
        table = f"__json_exact_{abs(hash((str(path), id(self)))) % 10**12}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} ({LINE} BIGINT, "
            f"{', '.join(f'{quote(k)} VARCHAR' for k in wanted) or 'nothing VARCHAR'})"
        )
        # A number with a fraction or an exponent is kept as its text (msgspec.Raw encodes verbatim).
        decoder = msgspec.json.Decoder(float_hook=lambda text: msgspec.Raw(text.encode()))
        encoder = msgspec.json.Encoder()
        if self._is_array(path):
            try:
                records = enumerate(decoder.decode(path.read_bytes()), start=1)
            except (msgspec.DecodeError, RecursionError):
                return (
                    dialect  # not JSON (DuckDB reports the file), or nested deeper than Python goes (DuckDB reads it)
                )
        else:
            valid = f"CASE WHEN {_VALID} THEN json_type(line) END = 'OBJECT'"
            rows = con.execute(
                f"SELECT {LINE}, line FROM {self._lines(path)} WHERE {valid} AND ({exact_lines})"
            ).fetchall()
            records = ((n, _decoded(decoder, line)) for n, line in rows)
        batch = []
        for number, record in records:
            if isinstance(record, dict):
                batch.append([number, *(_field_text(record.get(k), encoder) for k in wanted)])
            if len(batch) >= 10_000:
                con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * (len(wanted) + 1))})", batch)
                batch.clear()
        if batch:
            con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * (len(wanted) + 1))})", batch)
        return {**dialect, "exact_table": table}


# Valid JSON: what DuckDB parses, less what only its parser allows (NaN, trailing commas).
_VALID = f"(json_valid(line) AND NOT {json_lenient('line')})"


def _pointer(key: str) -> str:
    """A JSON pointer to a top-level key, as a SQL literal: any key, '/' and '~' escaped."""
    return literal("/" + key.replace("~", "~0").replace("/", "~1"))


def _decoded(decoder, line: str):
    try:
        return decoder.decode(line.encode())
    except Exception:  # noqa: BLE001 - not JSON: the scan rejects the line
        return None


def _field_text(value, encoder) -> str | None:
    """A JSON field as the text the platform converts: strings as they are, numbers as written."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return encoder.encode(value).decode()  # a number as written, or a nested value with its numbers as written


class NdjsonFormat(_JsonFormat):
    name = "ndjson"


class JsonFormat(_JsonFormat):
    """A JSON array of objects (or newline-delimited objects, detected by the first character)."""

    name = "json"

    def _is_array(self, path: Path) -> bool:
        with path.open("rb") as f:
            head = f.read(4096).lstrip(b" \t\r\n\xef\xbb\xbf")
        return head.startswith(b"[")


FORMATS: dict[str, type[FileFormat]] = {}


def register_format(cls: type[FileFormat]) -> type[FileFormat]:
    if not (isinstance(cls, type) and issubclass(cls, FileFormat)):
        raise TypeError(f"{cls!r} is not a FileFormat")
    if cls.name in FORMATS:
        raise ValueError(f"file format {cls.name!r} is registered twice")
    FORMATS[cls.name] = cls
    return cls


for _format in (CsvFormat, ParquetFormat, NdjsonFormat, JsonFormat):
    register_format(_format)


def file_format(name: str, options: CsvOptions) -> FileFormat:
    try:
        return FORMATS[name](options)
    except KeyError:
        raise ValueError(f"unknown file format {name!r}; known: {', '.join(sorted(FORMATS))}") from None


def missing_columns(offered: Sequence[str], columns: dict[str, ColumnSpec]) -> list[str]:
    """Source columns the mapping reads that a file does not have."""
    present = set(offered)
    wanted = dict.fromkeys(c for name, col in columns.items() for c in col.source_columns(name))
    return [c for c in wanted if c not in present]


class XlsxFormat(FileFormat):
    """An Excel workbook: one worksheet, row 1 holding the column names (see ``excel``).

    Each workbook is converted once to a Parquet file of text columns, in a temporary
    folder removed by ``close()`` or when this object is dropped. Values are cast by
    our SQL, and rejected rows report their Excel row number. The conversion also
    delivers ``stage.ROW_ERRORS``: a row with a mapped formula cell that has no saved
    result is rejected naming the cell. That column is never one of the file's columns.
    """

    name = "xlsx"
    reports_row_errors = True

    def __init__(self, options):
        super().__init__(options)
        # Excel options name the sheet; options without one (CSV's) read the first sheet.
        self.sheet: str | None = getattr(options, "sheet", None)
        self._converted: dict[tuple, tuple[Path, list[str]]] = {}
        self._folder: Path | None = None
        self._remove_folder = None

    def first_data_line(self) -> int:
        return 2  # row 1 holds the column names

    def columns(self, con, path, dialect=None) -> list[str]:
        from etl_platform.connectors import excel

        return _read_workbook(excel.header, path, self.sheet)

    def inspect(self, con, path, wanted):
        return list(self._convert(path, wanted)[1]), {}

    def scan(self, path, columns, rejects=None, dialect=None) -> str:
        return f"read_parquet({scan_path(self._convert(path, columns)[0])})"

    def close(self) -> None:
        if self._remove_folder is not None:
            self._remove_folder()
            self._folder = self._remove_folder = None
            self._converted.clear()

    def _convert(self, path: Path, columns: dict[str, ColumnSpec]) -> tuple[Path, list[str]]:
        import shutil
        import tempfile
        import weakref

        from etl_platform.connectors import excel

        # Formulas without a result matter only in the columns a pipeline loads.
        checked = frozenset(col.source or name for name, col in columns.items()) or None
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, checked)
        if key not in self._converted:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="etl-xlsx-"))
                self._remove_folder = weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
            dest = self._folder / f"{len(self._converted)}.parquet"
            self._converted[key] = dest, _read_workbook(excel.to_parquet, path, dest, self.sheet, checked)
        return self._converted[key]


def _read_workbook(read, *args):
    """``read(*args)``, reporting an unreadable workbook the way DuckDB reports an unreadable
    file, so a load rejects that file (or stops, by ``on_bad_file``) as it does any other."""
    from etl_platform.connectors.excel import WorkbookError

    try:
        return read(*args)
    except WorkbookError as err:
        raise duckdb.InvalidInputException(str(err)) from err


register_format(XlsxFormat)
