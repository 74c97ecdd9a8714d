"""One load's files, made safe to read: fingerprinted, sniffed, decompressed within
limits, transcoded to UTF-8, and checked for duplicates.

``FileIntake.examine`` turns the files a connection fetched into the files DuckDB
reads (often the same paths; a temporary UTF-8 or decompressed copy where needed),
and sets aside the files rejected whole, with the reason, and the duplicates.
"""

import shutil
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path

from etl_platform.intake import encodings, fingerprints, limits, sniff, workbooks
from etl_platform.intake.encodings import TextScan
from etl_platform.intake.fingerprints import Fingerprint

_TEXT_FORMATS = ("csv", "json", "ndjson")


class FileIntake:
    """The files of one load. Call ``examine`` once; ``close`` removes temporary copies
    (also done when the object is dropped)."""

    def __init__(
        self, con, spec, *, pipeline: str, table: str, run_id: str, relative: Callable[[Path], str], consult_ledger: bool | None = None
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
        self._fingerprints: dict[str, Fingerprint] = {}
        self._originals: dict[Path, Path] = {}
        self._folder: Path | None = None
        self._remove = None

    def relative(self, path: Path) -> str:
        """The name a file is recorded under, for an original path or its temporary copy."""
        return self._relative(self._originals.get(path, path))

    def examine(self, files: list[Path]) -> list[Path]:
        """Check every file; returns the paths to read, in the order given."""
        try:
            for path in files:
                try:
                    fingerprint = self._prepare(path, self._relative(path))
                except (limits.OverLimit, limits.Unreadable, encodings.EncodingError) as err:
                    self.rejected[path] = str(err)
                    continue
                except OSError as err:  # gone since it was listed, unreadable, a folder named like a file
                    self.rejected[path] = f"cannot be opened: {err.strerror or err}"
                    continue
                if fingerprint is not None:
                    self._fingerprints[fingerprint.file] = fingerprint
            hashes = sorted({f.sha256 for f in self._fingerprints.values()})
            # Across runs only where loads add up: a replace load is meant to reload everything.
            earlier = fingerprints.earlier_loads(self.con, self.pipeline, self.table, hashes) if self.consult_ledger else {}
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
        """Add the files this load committed to the ledger (inside the load's transaction)."""
        fingerprints.record(con, self.pipeline, self.table, self.run_id,
                            self.loaded([n for n in staged_names if n not in excluded_names]))

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
        reason it is rejected whole."""
        size = path.stat().st_size
        if size == 0:
            self.rejected[path] = "file is empty"
            return None
        lim = self.source.limits
        text = self.format in _TEXT_FORMATS
        scan = TextScan() if text else None
        head = sniff.read_head(path)
        compression = head.compression if self.format != "xlsx" else None
        if compression:
            ceiling, setting = limits.content_ceiling(lim)
            content_path = self._scratch(path, "content")
            sha = limits.hash_file(path)
            limits.decompress(path, compression, content_path, ceiling, setting, feed=scan.feed if scan else None)
            content = sniff.read_head(content_path)
        else:
            if lim.max_file_bytes is not None and size > lim.max_file_bytes:
                raise limits.OverLimit(f"file is {size:,} bytes, over the limit of {lim.max_file_bytes:,} (limits.max_file_bytes)")
            content_path, content = path, head
            sha = limits.hash_file(path, feed=scan.feed if scan else None)
        fingerprint = Fingerprint(name, size, sha)
        reason = sniff.format_mismatch(content, self.format, tail=_tail(content_path) if self.format == "parquet" else b"")
        if reason is None and self.format == "xlsx":
            ceiling, setting = limits.content_ceiling(lim)
            reason = workbooks.refusal(content_path, ceiling, setting)
        if reason is not None:
            raise limits.Unreadable(reason)
        if scan is not None:
            content_path = self._as_utf8(path, content_path, content, scan)
        self.readable[path] = content_path
        self._originals[content_path] = path
        return fingerprint

    def _as_utf8(self, path: Path, content_path: Path, content: sniff.Content, scan: TextScan) -> Path:
        scan.finish()
        declared = encodings.check_declared(getattr(self.source.csv, "encoding", "auto"))
        codec = scan.encoding(declared, content)
        if declared in ("utf-8", "utf-8-sig") and not scan.utf8_valid:
            raise encodings.EncodingError("is not valid UTF-8 (source.csv.encoding is 'utf-8'); declare its encoding, e.g. 'cp1252'")
        if scan.first_nul is not None and not codec.replace("_", "-").startswith("utf-16"):
            line = encodings.line_of(content_path, scan.first_nul)
            raise encodings.EncodingError(f"contains a NUL byte on line {line:,} (byte {scan.first_nul:,}): binary data, not text")
        if not encodings.needs_rewrite(codec, scan, bom_readable=self.format == "csv"):
            return content_path
        utf8 = self._scratch(path, "utf8")
        encodings.transcode(content_path, utf8, codec)
        if content_path != path:
            content_path.unlink(missing_ok=True)
        return utf8

    def _scratch(self, path: Path, kind: str) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="etl-intake-"))
            self._remove = weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
        folder = self._folder / str(len(list(self._folder.iterdir())))
        folder.mkdir()
        return folder / f"{kind}.{self.format}"


def _tail(path: Path, size: int = 8) -> bytes:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read()
