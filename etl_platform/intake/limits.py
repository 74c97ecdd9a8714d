"""Limits on what one file may hold, enforced while it is read.

A compressed file is decompressed here, a chunk at a time, and abandoned as soon as
its content passes the limit: a zip bomb costs the limit in disk and time, never its
full expansion. The checks after reading (rows, field length) run in SQL on the rows
a file staged.
"""

import gzip
import hashlib
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from etl_platform.sql import quote

CHUNK = 1 << 20


class OverLimit(ValueError):
    """A file passed a limit; the message says which and by how much."""


class Unreadable(ValueError):
    """A compressed file is damaged or not what its first bytes claim."""


def content_ceiling(limits) -> tuple[int, str]:
    """The most bytes of content a compressed file may expand to, and the setting that says so."""
    if limits.max_file_bytes is not None and limits.max_file_bytes < limits.max_decompressed_bytes:
        return limits.max_file_bytes, "limits.max_file_bytes"
    return limits.max_decompressed_bytes, "limits.max_decompressed_bytes"


def hash_file(path: Path, feed: Callable[[bytes], None] | None = None) -> str:
    """SHA-256 of a file's bytes; ``feed`` sees every chunk as well (one read for both)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            if feed is not None:
                feed(chunk)
    return digest.hexdigest()


def decompress(
    path: Path, compression: str, dest: Path, ceiling: int, setting: str, feed: Callable[[bytes], None] | None = None
) -> None:
    """Write the content of a .gz file, or of the one file in a .zip archive, to ``dest``.

    Stops with OverLimit once more than ``ceiling`` bytes come out; ``feed`` sees every
    decompressed chunk (to scan the text while it is written).
    """
    try:
        with _open_content(path, compression, ceiling, setting) as source, dest.open("wb") as out:
            written = 0
            # read(n) decompresses at most n bytes: memory and disk stay bounded whatever the ratio.
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > ceiling:
                    raise OverLimit(
                        f"decompresses to more than the limit of {ceiling:,} bytes ({setting}); "
                        "decompression was stopped there"
                    )
                out.write(chunk)
                if feed is not None:
                    feed(chunk)
    except (OverLimit, Unreadable):
        dest.unlink(missing_ok=True)
        raise
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, RuntimeError, NotImplementedError) as err:
        dest.unlink(missing_ok=True)
        raise Unreadable(f"is not a readable {compression} file ({type(err).__name__}: {err})") from err


def _open_content(path: Path, compression: str, ceiling: int, setting: str):
    if compression == "gzip":
        return gzip.open(path, "rb")
    archive = zipfile.ZipFile(path)
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if any(m.filename == "[Content_Types].xml" for m in members):
        archive.close()
        kind = (
            "a Word document" if any(m.filename.startswith("word/") for m in members) else "an Excel workbook (.xlsx)"
        )
        raise Unreadable(f"is {kind}, not a zip archive of one data file; an .xlsx file needs format: xlsx")
    if len(members) != 1:
        archive.close()
        listed = ", ".join(m.filename for m in members[:5]) or "nothing"
        raise Unreadable(f"is a zip archive holding {len(members)} files ({listed}); a zip file must hold exactly one")
    member = members[0]
    if member.flag_bits & 0x1:
        archive.close()
        raise Unreadable(f"is an encrypted zip archive ({member.filename}); send it without a password")
    if member.file_size > ceiling:
        archive.close()
        raise OverLimit(
            f"holds {member.filename} of {member.file_size:,} bytes, over the limit of {ceiling:,} ({setting})"
        )
    # The declared size may lie: the read loop counts what really comes out.
    return _Member(archive, archive.open(member))


class _Member:
    """One opened zip member that also closes its archive."""

    def __init__(self, archive: zipfile.ZipFile, stream):
        self.archive, self.stream = archive, stream

    def read(self, n: int) -> bytes:
        return self.stream.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stream.close()
        self.archive.close()


def too_many_columns(offered: list[str], limit: int | None) -> str | None:
    if limit is not None and len(offered) > limit:
        return f"file has {len(offered):,} columns, over the limit of {limit:,} (limits.max_columns)"
    return None


def longest_field(
    con, stage_sql: str, text_columns: list[str], first_row: int, last_row: int, limit: int | None
) -> str | None:
    """Why the rows a file staged (rowids first..last) break limits.max_field_chars, or None."""
    if limit is None or not text_columns or last_row < first_row:
        return None
    longest = "greatest(" + ", ".join(f"coalesce(length({quote(c)}), 0)" for c in text_columns) + ")"
    found = con.execute(
        f"SELECT rowid, {longest} AS n FROM {stage_sql} WHERE rowid BETWEEN ? AND ? AND {longest} > ? ORDER BY rowid "
        "LIMIT 1",
        [first_row, last_row, limit],
    ).fetchone()
    if found is None:
        return None
    row, length = found
    column = con.execute(
        "SELECT name FROM (SELECT unnest(?) AS name, "
        f"unnest([{', '.join(f'coalesce(length({quote(c)}), 0)' for c in text_columns)}]) AS n "
        f"FROM {stage_sql} WHERE rowid = ?) WHERE n > ? LIMIT 1",
        [text_columns, row, limit],
    ).fetchone()
    return (
        f"column {column[0]!r} of data row {row - first_row + 1:,} is {length:,} characters long, "
        f"over the limit of {limit:,} (limits.max_field_chars)"
    )


def stop_reading_after(lim) -> str:
    """A LIMIT clause that stops a scan one row past limits.max_rows: enough to know the file
    is over the limit without reading the rest of it."""
    return f" LIMIT {lim.max_rows + 1}" if lim.max_rows is not None else ""


def over_row_limits(con, stage_sql: str, spec, first_row: int | None, last_row: int | None, rows: int) -> str | None:
    """Why the rows one file staged (rowids first..last) break limits.max_rows or
    limits.max_field_chars, or None."""
    lim = spec.source.limits
    if lim.max_rows is not None and rows > lim.max_rows:
        return f"file has more than {lim.max_rows:,} rows, the limit (limits.max_rows); reading stopped there"
    if not rows:
        return None
    text_columns = [name for name, col in spec.source.columns.items() if col.duckdb_type in ("VARCHAR", "JSON")]
    return longest_field(con, stage_sql, text_columns, first_row, last_row, lim.max_field_chars)
