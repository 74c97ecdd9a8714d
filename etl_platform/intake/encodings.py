"""Text encodings: detected from the bytes (or declared), and transcoded to UTF-8 as a stream.

DuckDB reads UTF-8 only. A file in another encoding is rewritten to UTF-8 in a
temporary copy, a chunk at a time, before DuckDB reads it; line numbers stay those
of the original file. Detection, in order: a byte-order mark (UTF-8, UTF-16), UTF-16
without a mark (ASCII text with a NUL in every other byte), valid UTF-8, and
otherwise Windows-1252 (Latin-1 where a byte is undefined in Windows-1252).
"""

import codecs
from dataclasses import dataclass, field
from pathlib import Path

from etl_platform.intake.sniff import UTF8_BOM, UTF16_BOMS, Content

CHUNK = 1 << 20
AUTO = "auto"
# Bytes Windows-1252 leaves undefined: their presence means the file is really Latin-1.
_CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")


class EncodingError(ValueError):
    """The file does not decode in its declared encoding."""


def check_declared(encoding: str) -> str:
    """The declared encoding, normalised; raises ValueError for a name Python does not know."""
    if encoding.lower() == AUTO:
        return AUTO
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}; use 'auto', 'utf-8', 'utf-16', 'cp1252' or 'latin-1'") from None


@dataclass
class TextScan:
    """Facts about a text file gathered while it is read once (for its hash): NUL bytes,
    whether it is valid UTF-8, and its line endings. Feed it every chunk in order."""

    offset: int = 0
    first_nul: int | None = None
    utf8_valid: bool = True
    cp1252_undefined: bool = False
    crlf: int = 0
    bare_lf: bool = False
    _utf8: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())

    def feed(self, chunk: bytes) -> None:
        if self.first_nul is None:
            at = chunk.find(b"\x00")
            if at >= 0:
                self.first_nul = self.offset + at
        if self.utf8_valid and (not chunk.isascii() or self._utf8.getstate()[0]):
            try:
                self._utf8.decode(chunk)
            except UnicodeDecodeError:
                self.utf8_valid = False
        if not self.utf8_valid and not self.cp1252_undefined and not chunk.isascii():
            self.cp1252_undefined = any(b in chunk for b in _CP1252_UNDEFINED)
        # Only whether both endings occur matters; a search stops at the first hit, a count does not.
        if b"\r" in chunk:
            pairs = chunk.count(b"\r\n")  # a pair split across chunks is missed: only the mix matters
            self.crlf += pairs
            self.bare_lf = self.bare_lf or chunk.count(b"\n") > pairs
        elif not self.bare_lf:
            self.bare_lf = b"\n" in chunk
        self.offset += len(chunk)

    def finish(self) -> None:
        if self.utf8_valid:
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                self.utf8_valid = False

    @property
    def mixed_line_endings(self) -> bool:
        return self.crlf > 0 and self.bare_lf

    def encoding(self, declared: str, content: Content) -> str:
        """The codec to read the file with."""
        if declared != AUTO:
            if declared == "utf-8" and content.head.startswith(UTF8_BOM):
                return "utf-8-sig"
            return declared
        head = content.head
        if head.startswith(UTF8_BOM):
            return "utf-8-sig"
        if head.startswith(UTF16_BOMS):
            return "utf-16"
        if content.utf16_without_bom:
            return content.utf16_without_bom
        if self.utf8_valid:
            return "utf-8"
        return "latin-1" if self.cp1252_undefined else "cp1252"


def needs_rewrite(codec: str, scan: TextScan, *, bom_readable: bool) -> bool:
    """Whether DuckDB needs a UTF-8 copy: another encoding, CRLF mixed with LF (its CSV
    sniffer refuses the mix), or a UTF-8 BOM where the reader does not skip it (JSON)."""
    if codec == "utf-8-sig" and not bom_readable:
        return True
    return codec not in ("utf-8", "utf-8-sig") or scan.mixed_line_endings


def line_of(path: Path, offset: int) -> int:
    """1-based line of a byte offset (read in chunks; only for error messages)."""
    line, done = 1, 0
    with path.open("rb") as f:
        while done < offset:
            chunk = f.read(min(CHUNK, offset - done))
            if not chunk:
                break
            line += chunk.count(b"\n")
            done += len(chunk)
    return line


def transcode(src: Path, dest: Path, codec: str) -> None:
    """Rewrite ``src`` as UTF-8 without a BOM at ``dest``, CRLF turned into LF, a chunk at a time.

    Raises EncodingError naming the line of the first byte that does not decode.
    """
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    pending_cr = False
    done = 0
    with src.open("rb") as inp, dest.open("w", encoding="utf-8", newline="") as out:
        while True:
            chunk = inp.read(CHUNK)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                at = done + max(err.start, 0)
                raise EncodingError(f"is not valid {codec}: byte {at:,} (line {line_of(src, at)}) does not decode") from None
            done += len(chunk)
            if pending_cr:
                text = "\r" + text
            pending_cr = text.endswith("\r") and bool(chunk)
            if pending_cr:
                text = text[:-1]
            if "\x00" in text:
                raise EncodingError(f"contains a NUL character after decoding as {codec}: binary data, not text")
            out.write(text.replace("\r\n", "\n").lstrip("\ufeff") if done == len(chunk) else text.replace("\r\n", "\n"))
            if not chunk:
                break
