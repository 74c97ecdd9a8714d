"""Files still being written: left for the next run instead of loaded torn.

A file another process is still appending to may end in half a row (``4,5,30`` of a
line that becomes ``4,5,300``), which would load as a different value. Intake notes
each file's size and modification time before it reads it and again after; a file
that changed meanwhile, or a CSV/NDJSON file that does not end with a line break and
was modified less than ``source.settle_seconds`` ago, is left for the next run: not
loaded, not recorded in the ledger, not rejected, but shown in the load's ``files``
table. The load checks once more when it commits (``changed_since``): a file that
changed while DuckDB read it fails the load, which changes nothing and is tried again.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

LEFT_FOR_LATER = "still being written: left for the next run"
# What a complete line of text ends with, in ASCII-compatible encodings and in UTF-16 (either order).
_LINE_ENDS = (b"\n", b"\r", b"\n\x00", b"\r\x00", b"\n\x00\x00\x00")


class StillBeingWritten(Exception):
    """A file changed while it was being loaded; nothing was loaded. The message says so
    in words that mark the failure as transient (retried by the step's retry policy)."""


@dataclass(frozen=True)
class Snapshot:
    """A file's size and modification time, as seen at one moment."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> "Snapshot":
        stat = os.stat(path)
        return cls(stat.st_size, stat.st_mtime_ns)

    def seconds_old(self) -> float:
        return time.time() - self.mtime_ns / 1e9


def ends_a_line(path: Path, line_end: bytes | None = None) -> bool:
    """Whether the file's last bytes end a line (``line_end``: a declared encoding's own)."""
    with path.open("rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - 4))
        tail = f.read()
    return tail.endswith(_LINE_ENDS + ((line_end,) if line_end else ()))


def unsettled_reason(before: Snapshot, after: Snapshot, *, torn_tail: bool, settle_seconds: float) -> str | None:
    """Why a file is left for the next run, or None to load it.

    ``torn_tail``: it is line-based text whose last line has no line break.
    """
    if after != before:
        return f"{LEFT_FOR_LATER} (it changed while it was read)"
    if torn_tail and after.seconds_old() < settle_seconds:
        return (
            f"{LEFT_FOR_LATER} (its last line has no line break and it was modified "
            f"{max(after.seconds_old(), 0):.1f} s ago, less than source.settle_seconds: {settle_seconds:g})"
        )
    return None


def changed_since(path: Path, seen: Snapshot) -> bool:
    try:
        return Snapshot.of(path) != seen
    except OSError:
        return True
