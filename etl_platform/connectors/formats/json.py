"""JSON arrays and NDJSON, each record checked before DuckDB reads it, numbers kept as written."""

from pathlib import Path

from etl_platform.connectors.formats.base import LINE, PARSE_ERROR, RAW_LINE, FileFormat, register_format, scan_path
from etl_platform.sql import json_lenient, literal, quote


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
        # an invalid line is the scan's to reject
        exact = f"CASE WHEN {_VALID} THEN ({' OR '.join(conditions)}) ELSE false END"
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


@register_format
class NdjsonFormat(_JsonFormat):
    name = "ndjson"
    asset_kind = "json"


@register_format
class JsonFormat(_JsonFormat):
    """A JSON array of objects (or newline-delimited objects, detected by the first character)."""

    name = "json"
    asset_kind = "json"

    def _is_array(self, path: Path) -> bool:
        with path.open("rb") as f:
            head = f.read(4096).lstrip(b" \t\r\n\xef\xbb\xbf")
        return head.startswith(b"[")
