"""Text encodings: detected from the bytes (or declared), and transcoded to UTF-8 as a stream.

DuckDB reads UTF-8 only. A file in another encoding is rewritten to UTF-8 in a
temporary copy, a chunk at a time, before DuckDB reads it; line numbers stay those
of the original file. Detection, in order: a byte-order mark (UTF-8, UTF-16), UTF-16
without a mark (ASCII text with a NUL in every other byte), valid UTF-8, and
otherwise Windows-1252, judged before it is used (``fallback_refusal``).

Garbled text is never loaded. A file that is not UTF-8 is rejected, naming the first
byte that is not, when it is mostly UTF-8 (mixed encodings), when a detector finds that
Windows-1252 makes no sense of it (it names the encoding it looks like), when it holds
bytes Windows-1252 leaves undefined (control characters in Latin-1), or when it holds
UTF-8 text among Windows-1252 text (``transcode`` with ``refuse_utf8_text``). A
declared encoding is trusted unless the bytes contradict it: bytes it cannot decode,
or control characters (U+0080-U+009F) it decodes to.
"""

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

from etl_platform.intake.sniff import UTF8_BOM, UTF16_BOMS, Content
from etl_platform.spec.sources import AUTO_ENCODING as AUTO

CHUNK = 1 << 20
SETTING = "source.csv.encoding"
# Bytes Windows-1252 leaves undefined (Latin-1 reads them as control characters).
_CP1252_UNDEFINED = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")
_ASCII = bytes(range(0x80))
# The detector's sample: this much on each side of the first byte that is not UTF-8.
SAMPLE_BYTES = 128 * 1024
# Windows-1252 reads a sample as garbled text when the detector's mess ratio for it reaches
# this, or when a word of it is mostly non-ASCII characters, three or more (``_WORD``): "Èâàí"
# for Иван, "“Œ‹ž" for 東京. Measured on 1,200 generated CSV samples of French, German, Spanish
# and Nordic rows (with punctuation, some in capitals, 1 to 100 rows): mess at most 0.23, no such
# word. Cyrillic, Greek and East Asian samples: mess 0.4 or more but for short ones, which the
# word rule catches. Polish and Czech in Windows-1250 are Latin script too: caught about two
# times in three; the rest read as plausible Windows-1252 (declare the encoding).
_GARBLED = 0.4
_WORD = re.compile(r"[^\x00-\x40\x5b-\x60\x7b-\x7f]+")  # letters, ASCII or not, and any non-ASCII character
# Fewer non-ASCII bytes than this in the sample: too little for the detector to name an encoding.
_LEAST_EVIDENCE = 8
# UTF-8 sequences for U+0080-U+017F (Latin-1 and Latin Extended-A: é, œ, š, ł) and general
# punctuation (’ “ ” … – — € ™), the characters European text holds: in a Windows-1252 file
# they are UTF-8 text ("Ã©" for "é"). Each pattern starts with a literal byte, which Python's
# regex engine scans for quickly (a character class first would be some 30 times slower).
_UTF8_IN_CP1252 = tuple(
    (bytes([lead]), re.compile(bytes([lead]) + follow))
    for lead, follow in (
        (0xC3, rb"[\x80-\xbf]"),
        (0xC2, rb"[\x80-\xbf]"),
        (0xC5, rb"[\x80-\xbf]"),
        (0xC4, rb"[\x80-\xbf]"),
        (0xE2, rb"[\x80-\x84][\x80-\xbf]"),
    )
)
_C1_AS_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")


class EncodingError(ValueError):
    """The file does not decode in its declared encoding, or would load as garbled text."""


@dataclass
class TextScan:
    """Facts about a text file gathered while it is read once (for its hash): NUL bytes,
    whether it is valid UTF-8 (and where it stops being), and its line endings. Feed it
    every chunk in order."""

    offset: int = 0
    first_nul: int | None = None
    utf8_valid: bool = True
    first_not_utf8: int | None = None  # offset of the first byte that is not UTF-8
    first_cp1252_undefined: int | None = None  # offset of the first, once the file is known not to be UTF-8
    crlf: int = 0
    bare_lf: bool = False
    _utf8: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())

    def feed(self, chunk: bytes) -> None:
        if self.first_nul is None:
            at = chunk.find(b"\x00")
            if at >= 0:
                self.first_nul = self.offset + at
        if self.utf8_valid and (not chunk.isascii() or self._utf8.getstate()[0]):
            held = len(self._utf8.getstate()[0])
            try:
                self._utf8.decode(chunk)
            except UnicodeDecodeError as err:
                self.utf8_valid = False
                self.first_not_utf8 = self.offset - held + max(err.start, 0)
        if not self.utf8_valid and self.first_cp1252_undefined is None and not chunk.isascii():
            found = [at for at in (chunk.find(b) for b in _CP1252_UNDEFINED) if at >= 0]
            if found:
                self.first_cp1252_undefined = self.offset + min(found)
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
                self.first_not_utf8 = self.offset - len(self._utf8.getstate()[0])

    @property
    def cp1252_undefined(self) -> bool:
        return self.first_cp1252_undefined is not None

    @property
    def mixed_line_endings(self) -> bool:
        return self.crlf > 0 and self.bare_lf

    def encoding(self, declared: str, content: Content) -> str:
        """The codec to read the file with."""
        head = content.head
        if declared != AUTO:
            if declared == "utf-8" and head.startswith(UTF8_BOM):
                return "utf-8-sig"
            if declared == "utf-16" and not head.startswith(UTF16_BOMS) and content.utf16_without_bom:
                return content.utf16_without_bom  # Python would otherwise assume this machine's byte order
            return declared
        if head.startswith(UTF8_BOM):
            return "utf-8-sig"
        if head.startswith(UTF16_BOMS):
            return "utf-16"
        if content.utf16_without_bom:
            return content.utf16_without_bom
        if self.utf8_valid:
            return "utf-8"
        return "latin-1" if self.cp1252_undefined else "cp1252"


def is_utf8(codec: str) -> bool:
    return codec in ("utf-8", "utf-8-sig")


def needs_rewrite(codec: str, scan: TextScan, *, bom_readable: bool) -> bool:
    """Whether DuckDB needs a UTF-8 copy: another encoding, CRLF mixed with LF (its CSV
    sniffer refuses the mix), or a UTF-8 BOM where the reader does not skip it (JSON)."""
    if codec == "utf-8-sig" and not bom_readable:
        return True
    return not is_utf8(codec) or scan.mixed_line_endings


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


def where(path: Path, offset: int) -> str:
    """'byte 1,234 (line 5)' for an error message; offsets count from 0."""
    return f"byte {offset:,} (line {line_of(path, offset):,})"


def fallback_refusal(path: Path, scan: TextScan) -> str | None:
    """For a file that is not UTF-8 and has no declared encoding: why reading it as
    Windows-1252 would load garbled text, or None when it reads as Windows-1252.

    Reads a bounded sample around the first byte that is not UTF-8, never the whole file.
    """
    at = scan.first_not_utf8 or 0
    start, sample = _sample(path, at)
    first = f"{where(path, at)} is 0x{_byte_at(path, at):02x}"
    if _mostly_utf8(sample):
        return (
            f"mixes encodings: it is UTF-8, except that {first}, which is not; save all of it as UTF-8, "
            f"or declare {SETTING} if all of it is in one other encoding"
        )
    # Before judging the rest: UTF-8 text read as Windows-1252 ("blÃ¥bÃ¦r") looks garbled too.
    if (utf8 := _utf8_text(sample)) is not None:
        return _utf8_text_in_cp1252(path, sample, utf8, start + utf8)
    undefined = scan.first_cp1252_undefined
    if _garbled_as_cp1252(sample):
        looks_like = likely_encodings(sample)
        if looks_like:
            others = f" (or {', '.join(looks_like[1:])})" if len(looks_like) > 1 else ""
            return (
                f"is not UTF-8: {first}, and as Windows-1252 it reads as garbled text; it looks like "
                f"{looks_like[0]}{others}: declare {SETTING}: {looks_like[0]}"
            )
        if undefined is None:
            return (
                f"is not UTF-8: {first}, and as Windows-1252 it reads as garbled text; "
                f"declare its encoding in {SETTING}"
            )
    if undefined is not None:
        return (
            f"is neither UTF-8 nor Windows-1252: {where(path, undefined)} is 0x{_byte_at(path, undefined):02x}, "
            "which Windows-1252 leaves undefined and Latin-1 reads as a control character; declare its encoding in "
            f"{SETTING}"
        )
    return None


def likely_encodings(sample: bytes) -> list[str]:
    """Encodings a detector (charset-normalizer) finds the sample makes sense in, best first,
    at most three that read it differently; none when the sample holds too little non-ASCII
    text to tell. A match in a recognised language comes first, and one that reads the text
    as mostly half-width katakana last: Cyrillic in capitals decodes so in Shift-JIS, without
    any mess the detector would see."""
    from charset_normalizer import from_bytes

    if len(sample.translate(None, _ASCII)) < _LEAST_EVIDENCE:
        return []

    def rank(match) -> tuple:
        letters = [c for c in str(match) if not c.isascii()]
        halfwidth = sum("\uff61" <= c <= "\uff9f" for c in letters) > len(letters) / 2
        return (match.coherence == 0, halfwidth, match.chaos, -match.coherence)

    names: list[str] = []
    for match in sorted(from_bytes(sample), key=rank):
        name = codecs.lookup(match.encoding).name
        if name not in names and name not in ("cp1252", "iso8859-1"):
            names.append(name)
    return names[:3]


def _garbled_as_cp1252(sample: bytes) -> bool:
    from charset_normalizer import from_bytes

    try:
        text = sample.decode("cp1252")
    except UnicodeDecodeError:
        return True
    for word in _WORD.finditer(text):
        foreign = sum(not c.isascii() for c in word.group())
        if foreign >= 3 and 2 * foreign >= len(word.group()):
            return True
    # None when Windows-1252 reads the sample only as text messier than the threshold.
    return from_bytes(sample, cp_isolation=["cp1252"], threshold=_GARBLED).best() is None


def _mostly_utf8(sample: bytes) -> bool:
    """More of the sample's non-ASCII bytes form valid UTF-8 than not: UTF-8 with bytes of
    another encoding mixed in. A legacy encoding forms valid UTF-8 by chance in well under
    half of its bytes (measured: at most ~40%, for Korean and Polish in capitals)."""
    non_ascii = len(sample.translate(None, _ASCII))
    invalid = len(sample) - len(sample.decode("utf-8", "surrogateescape").encode("utf-8", "ignore"))
    return non_ascii - invalid >= invalid > 0


def _sample(path: Path, at: int) -> tuple[int, bytes]:
    """Whole lines around offset ``at``, about SAMPLE_BYTES before it and after it, and the
    offset they start at. Lines, because a multi-byte character cut in two would look like
    one more error."""
    start = max(0, at - SAMPLE_BYTES)
    with path.open("rb") as f:
        f.seek(start)
        data = f.read(at - start + SAMPLE_BYTES)
    at -= start
    if start and (cut := data.find(b"\n", 0, at)) >= 0:
        data, at, start = data[cut + 1 :], at - cut - 1, start + cut + 1
    end = data.rfind(b"\n")
    return start, (data[: end + 1] if end >= at else data)


def _byte_at(path: Path, offset: int) -> int:
    with path.open("rb") as f:
        f.seek(offset)
        byte = f.read(1)
    return byte[0] if byte else 0


def transcode(src: Path, dest: Path, codec: str, *, declared: bool = False, refuse_utf8_text: bool = False) -> None:
    """Rewrite ``src`` as UTF-8 without a BOM at ``dest``, CRLF turned into LF, a chunk at a time.

    Raises EncodingError naming the byte and line of the first byte that does not decode,
    of a control character U+0080-U+009F (bytes of another encoding), and, with
    ``refuse_utf8_text`` (a Windows-1252 file nobody declared), of UTF-8 text in the file.
    ``declared`` says the codec is the pipeline's declared encoding (for the message).
    """
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    said = f" ({SETTING} is '{codec}')" if declared else ""
    check_c1 = not is_utf8(codec) and codec != "cp1252"  # strict Windows-1252 never gives one
    pending_cr = False
    offset = 0  # bytes of src read before this chunk
    previous = b""  # the unfinished last line of the previous chunk, for text split between chunks
    with src.open("rb") as inp, dest.open("wb") as out:
        while True:
            chunk = inp.read(CHUNK)
            held = len(decoder.getstate()[0])  # bytes of the previous chunk the decoder still holds
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                at = offset - held + max(err.start, 0)
                # it holds the chunk's raw bytes and a place within the chunk; the message gives the file's
                raise EncodingError(f"is not valid {codec}{said}: {where(src, at)} does not decode") from None
            if refuse_utf8_text:
                joined = previous + chunk
                if (utf8 := _utf8_text(joined, last_line_complete=not chunk)) is not None:
                    raise EncodingError(_utf8_text_in_cp1252(src, joined, utf8, offset - len(previous) + utf8))
                # The start of the line the next chunk goes on with (its last bytes, for a very long line).
                previous = joined[max(joined.rfind(b"\n") + 1, len(joined) - 65536) :]
            if "\x00" in text:
                raise EncodingError(f"contains a NUL character after decoding as {codec}: binary data, not text")
            decoded = text
            if pending_cr:
                text = "\r" + text
            pending_cr = text.endswith("\r") and bool(chunk)
            if pending_cr:
                text = text[:-1]
            data = (text.lstrip("\ufeff") if offset == 0 else text).replace("\r\n", "\n").encode("utf-8")
            if check_c1 and _C1_AS_UTF8.search(data):  # found fast in the UTF-8 bytes, then placed exactly
                start = offset - held if offset else _bom_length(src, codec)
                _refuse_control_character(src, decoded, start, codec, said)
            out.write(data)
            offset += len(chunk)
            if not chunk:
                break


def _refuse_control_character(src: Path, decoded: str, start: int, codec: str, said: str) -> None:
    """Raise for the first U+0080-U+009F in ``decoded``, the text of the bytes from ``start``."""
    found = re.search("[\x80-\x9f]", decoded)
    if found is None:
        return
    at = start + len(decoded[: found.start()].encode(codec)) - len("".encode(codec))  # without a BOM
    raise EncodingError(
        f"is not {codec}{said}: {where(src, at)} decodes to the control character U+{ord(found.group()):04X}, "
        "so the file is in another encoding"
    )


def _utf8_text(data: bytes, *, last_line_complete: bool = True) -> int | None:
    """Where ``data`` first holds a European character written as UTF-8 in a line that is all
    valid UTF-8, or None. Whole lines: bytes of Shift-JIS or Windows-1251 text form such a
    character by chance now and then, but hardly ever a whole line of valid UTF-8. With
    ``last_line_complete`` false, a line without its line break is left for the next chunk."""
    at = 0
    patterns = [pattern for lead, pattern in _UTF8_IN_CP1252 if lead in data]  # a plain byte search is faster still
    while True:
        hits = [m.start() for m in (p.search(data, at) for p in patterns) if m]
        if not hits:
            return None
        hit = min(hits)
        start, end = data.rfind(b"\n", 0, hit) + 1, data.find(b"\n", hit)
        if end < 0 and not last_line_complete:
            return None
        end = len(data) if end < 0 else end
        try:
            data[start:end].decode("utf-8")
            return hit
        except UnicodeDecodeError:
            at = end


def _utf8_text_in_cp1252(src: Path, data: bytes, first: int, at: int) -> str:
    shown = data[first : first + 3].decode("utf-8", "ignore")[:1]
    return (
        f"mixes encodings: it is Windows-1252, but {where(src, at)} starts UTF-8 text ({shown!r} written as UTF-8); "
        f"save all of it as UTF-8, or declare {SETTING} if all of it is in one encoding"
    )


def _bom_length(path: Path, codec: str) -> int:
    """Bytes of a byte-order mark the decoder consumes at the start of the file."""
    with path.open("rb") as f:
        head = f.read(4)
    if codec == "utf-8-sig" and head.startswith(UTF8_BOM):
        return 3
    if codec == "utf-32" and head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return 4
    if codec == "utf-16" and head.startswith(UTF16_BOMS):
        return 2
    return 0
