"""One load's files, made safe to read: fingerprinted, sniffed, decompressed within
limits, transcoded to UTF-8, checked for duplicates and for still being written.

``FileIntake.examine`` turns the files a connection fetched into the files DuckDB
reads (often the same paths; a temporary UTF-8 or decompressed copy, or a plainly
named link to a file whose name DuckDB would read as a pattern, where needed), and
sets aside the files rejected whole, with the reason, the duplicates, and the files
still being written (left for the next run).
"""

import shutil
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path

from etl_platform.intake import encodings, fingerprints, limits, paths, settling, sniff, workbooks
from etl_platform.intake.encodings import TextScan
from etl_platform.intake.fingerprints import Fingerprint
from etl_platform.intake.settling import Snapshot, StillBeingWritten
from etl_platform.spec.sources import check_declared

_TEXT_FORMATS = ("csv", "json", "ndjson")
_LINE_FORMATS = ("csv", "ndjson")  # a row per line: a last line without its line break may be torn


class FileIntake:
    """The files of one load. Call ``examine`` once; ``close`` removes temporary copies
    (also done when the object is dropped)."""

    def __init__(
        self,
        con,
        spec,
        *,
        pipeline: str,
        table: str,
        run_id: str,
        relative: Callable[[Path], str],
        consult_ledger: bool | None = None,
    ):
        self.con, self.spec, self.pipeline, self.table, self.run_id = con, spec, pipeline, table, run_id
        # Files loaded by earlier runs are skipped only where loads add up (not by a replace).
        self.consult_ledger = spec.sync.mode != "replace" if consult_ledger is None else consult_ledger
        self.source = spec.source
        self.format = self.source.file_format
        self._relative = relative
        self.readable: dict[Path, Path] = {}  # original -> the path DuckDB reads
        self.rejected: dict[Path, str] = {}  # original -> why the whole file is rejected
        self.duplicates: list[tuple[str, str]] = []  # (file, what it duplicates)
        self.unsettled: list[tuple[str, str]] = []  # (file, why it is left for the next run)
        self._fingerprints: dict[str, Fingerprint] = {}
        self._seen: dict[str, tuple[Path, Snapshot]] = {}  # name -> original and how it looked when read
        self._originals: dict[Path, Path] = {}
        self._folder: Path | None = None
        self._folders = 0
        self._remove = None

    def relative(self, path: Path) -> str:
        """The name a file is recorded under, for an original path or its temporary copy."""
        return self._relative(self._originals.get(path, path))

    def examine(self, files: list[Path]) -> list[Path]:
        """Check every file; returns the paths to read, in the order given.

        Raises StillBeingWritten when a replace load has a file still being written: it
        reads all files together, so loading the others would drop that file's rows."""
        try:
            for path in files:
                name = self._relative(path)
                try:
                    fingerprint = self._prepare(path, name)
                except (limits.OverLimit, limits.Unreadable, encodings.EncodingError) as err:
                    self.rejected[path] = str(err)
                    continue
                except OSError as err:  # gone since it was listed, unreadable, a folder named like a file
                    self.rejected[path] = f"cannot be opened: {err.strerror or err}"
                    continue
                if fingerprint is not None:
                    self._fingerprints[fingerprint.file] = fingerprint
            if self.unsettled and self.spec.sync.mode == "replace":
                name, why = self.unsettled[0]
                raise StillBeingWritten(
                    f"{name}: {why}. A replace load reads all of its files together, so nothing was loaded and the "
                    "table was left as it was; try again once the file is complete"
                )
            hashes = sorted({f.sha256 for f in self._fingerprints.values()})
            # Across runs only where loads add up: a replace load is meant to reload everything.
            earlier = (
                fingerprints.earlier_loads(self.con, self.pipeline, self.table, hashes) if self.consult_ledger else {}
            )
            seen: dict[str, str] = {}
            for path in list(self.readable):
                fingerprint = self._fingerprints[self._relative(path)]
                if fingerprint.sha256 in earlier:
                    self._skip(path, earlier[fingerprint.sha256].describe())
                elif fingerprint.sha256 in seen:
                    self._skip(path, f"same content as {seen[fingerprint.sha256]}, earlier in this load")
                else:
                    seen[fingerprint.sha256] = fingerprint.file
        except BaseException:
            self.close()
            raise
        return list(self.readable.values())

    def loaded(self, names: list[str]) -> list[Fingerprint]:
        return [self._fingerprints[n] for n in names if n in self._fingerprints]

    def record(self, con, staged_names: list[str], excluded_names: set[str]) -> None:
        """Add the files this load committed to the ledger (inside the load's transaction).

        Raises StillBeingWritten, failing the load, when one of them changed since it was
        examined: DuckDB may have read more of it than was examined, a half-written last row too."""
        names = [n for n in staged_names if n not in excluded_names]
        for name in names:
            if name in self._seen and settling.changed_since(*self._seen[name]):
                raise StillBeingWritten(
                    f"{name} changed while it was being loaded (it is still being written); nothing was loaded, "
                    "so it is read again whole: try again once it is complete"
                )
        fingerprints.record(con, self.pipeline, self.table, self.run_id, self.loaded(names))

    def close(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = self._folder = None

    def _skip(self, path: Path, why: str) -> None:
        name = self._relative(path)
        self.duplicates.append((name, why))
        self._fingerprints.pop(name, None)
        read = self.readable.pop(path, None)
        if read is not None and read != path:
            read.unlink(missing_ok=True)

    def _prepare(self, path: Path, name: str) -> Fingerprint | None:
        """Fingerprint and check one file; on success it is in ``readable``. Raises the
        reason it is rejected whole; a file still being written goes to ``unsettled``."""
        before = Snapshot.of(path)
        if before.size == 0:
            self.rejected[path] = "file is empty"
            return None
        made: list[Path] = []  # temporary copies of this file, removed if it is left for later
        try:
            fingerprint, content_path = self._read(path, name, before, made)
        except (limits.OverLimit, limits.Unreadable, encodings.EncodingError):
            # A file that changed while it was read was judged on bytes it no longer holds.
            if not self._left_for_later(path, name, before, made, torn_tail=False):
                raise
            return None
        if fingerprint is None or self._left_for_later(path, name, before, made, torn_tail=False):
            return None
        if not paths.is_plain(content_path):
            content_path = paths.without_patterns(content_path, self._scratch_folder())
        self.readable[path] = content_path
        self._originals[content_path] = path
        self._seen[name] = (path, before)
        return fingerprint

    def _read(self, path: Path, name: str, before: Snapshot, made: list[Path]) -> tuple[Fingerprint | None, Path]:
        """Hash, decompress, sniff and transcode one file; the fingerprint (None when it is
        left for later) and the path to read."""
        lim = self.source.limits
        text = self.format in _TEXT_FORMATS
        scan = TextScan() if text else None
        head = sniff.read_head(path)
        compression = head.compression if self.format != "xlsx" else None
        if compression:
            ceiling, setting = limits.content_ceiling(lim)
            content_path = self._scratch(path, "content")
            made.append(content_path)
            sha = limits.hash_file(path)
            limits.decompress(path, compression, content_path, ceiling, setting, feed=scan.feed if scan else None)
            content = sniff.read_head(content_path)
        else:
            if lim.max_file_bytes is not None and before.size > lim.max_file_bytes:
                raise limits.OverLimit(
                    f"file is {before.size:,} bytes, over the limit of {lim.max_file_bytes:,} (limits.max_file_bytes)"
                )
            content_path, content = path, head
            sha = limits.hash_file(path, feed=scan.feed if scan else None)
        fingerprint = Fingerprint(name, before.size, sha)
        reason = sniff.format_mismatch(
            content, self.format, tail=_tail(content_path) if self.format == "parquet" else b""
        )
        if reason is None and self.format == "xlsx":
            ceiling, setting = limits.content_ceiling(lim)
            reason = workbooks.refusal(content_path, ceiling, setting)
        if reason is not None:
            raise limits.Unreadable(reason)
        # Before judging the text: a torn last line would be judged, and rejected, as bad data.
        torn = self.format in _LINE_FORMATS and not settling.ends_a_line(content_path, self._declared_line_end())
        if self._left_for_later(path, name, before, made, torn_tail=torn):
            return None, content_path
        if scan is not None:
            content_path = self._as_utf8(path, content_path, content, scan, made)
        return fingerprint, content_path

    def _left_for_later(self, path: Path, name: str, before: Snapshot, made: list[Path], *, torn_tail: bool) -> bool:
        """Whether the file is still being written; if so it is noted in ``unsettled`` and its copies removed."""
        why = settling.unsettled_reason(
            before, Snapshot.of(path), torn_tail=torn_tail, settle_seconds=self.source.settle_seconds
        )
        if why is None:
            return False
        self.unsettled.append((name, why))
        for copy in made:
            copy.unlink(missing_ok=True)
        return True

    def _declared_line_end(self) -> bytes | None:
        declared = check_declared(getattr(self.source.csv, "encoding", "auto"))
        if declared == encodings.AUTO:
            return None
        return "\n".encode(declared)[len("".encode(declared)) :]  # without a byte-order mark

    def _as_utf8(
        self, path: Path, content_path: Path, content: sniff.Content, scan: TextScan, made: list[Path]
    ) -> Path:
        scan.finish()
        declared = check_declared(getattr(self.source.csv, "encoding", "auto"))
        codec = scan.encoding(declared, content)
        if encodings.is_utf8(declared) and not scan.utf8_valid:
            raise encodings.EncodingError(
                f"is not valid UTF-8 ({encodings.SETTING} is '{declared}'): "
                f"{encodings.where(content_path, scan.first_not_utf8 or 0)} does not decode; declare its encoding, "
                "e.g. 'cp1252'"
            )
        if scan.first_nul is not None and not codec.replace("_", "-").startswith(("utf-16", "utf-32")):
            line = encodings.line_of(content_path, scan.first_nul)
            raise encodings.EncodingError(
                f"contains a NUL byte on line {line:,} (byte {scan.first_nul:,}): binary data, not text"
            )
        fallback = declared == encodings.AUTO and codec in ("cp1252", "latin-1")
        if fallback and (refusal := encodings.fallback_refusal(content_path, scan)):
            raise encodings.EncodingError(refusal)
        if not encodings.needs_rewrite(codec, scan, bom_readable=self.format == "csv"):
            return content_path
        utf8 = self._scratch(path, "utf8")
        made.append(utf8)
        encodings.transcode(content_path, utf8, codec, declared=declared != encodings.AUTO, refuse_utf8_text=fallback)
        if content_path != path:
            content_path.unlink(missing_ok=True)
        return utf8

    def _scratch_folder(self) -> Path:
        """A new empty folder for one file's temporary copies, inside this load's own temporary folder."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="etl-intake-"))
            self._remove = weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
        self._folders += 1
        folder = self._folder / str(self._folders)
        folder.mkdir()
        return folder

    def _scratch(self, path: Path, kind: str) -> Path:
        return self._scratch_folder() / f"{kind}.{self.format}"


def _tail(path: Path, size: int = 8) -> bytes:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read()
