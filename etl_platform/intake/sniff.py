"""What a file is, judged by its first bytes rather than its name.

A pipeline declares a format (or its glob's extension implies one); a file whose
content is something else is rejected whole with a reason saying what it really is,
instead of failing deep inside a reader with a message about line 1.
"""

from dataclasses import dataclass

HEAD_BYTES = 65536

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
PARQUET_MAGIC = b"PAR1"
# Compound File Binary (OLE2): legacy .xls, and the container Excel wraps around a password-encrypted .xlsx.
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

_BINARY_KINDS = {
    GZIP_MAGIC: "a gzip-compressed file",
    ZIP_MAGIC: "a zip archive (or an .xlsx workbook)",
    EMPTY_ZIP_MAGIC: "an empty zip archive",
    PARQUET_MAGIC: "a Parquet file",
    OLE_MAGIC: "an OLE2 document (a legacy .xls or password-encrypted Excel workbook)",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"SQLite format 3\x00": "a SQLite database",
    b"\x28\xb5\x2f\xfd": "a zstd-compressed file",
    b"BZh": "a bzip2-compressed file",
    b"\xfd7zXZ\x00": "an xz-compressed file",
}

_TEXT_FORMATS = ("csv", "json", "ndjson")


@dataclass(frozen=True)
class Content:
    """The first bytes of a file and what they say about it."""

    head: bytes

    @property
    def binary_kind(self) -> str | None:
        """A plain-words name for a binary format recognised by its magic bytes, else None."""
        for magic, kind in _BINARY_KINDS.items():
            if self.head.startswith(magic):
                return kind
        return None

    @property
    def compression(self) -> str | None:
        if self.head.startswith(GZIP_MAGIC):
            return "gzip"
        if self.head.startswith(ZIP_MAGIC):
            return "zip"
        return None

    @property
    def utf16_without_bom(self) -> str | None:
        """'utf-16-le' / 'utf-16-be' when the text has a NUL in every other byte (ASCII as UTF-16)."""
        sample = self.head[:4096]
        if len(sample) < 4 or sample.startswith(UTF16_BOMS):
            return None
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be"
        return None


def read_head(path, size: int = HEAD_BYTES) -> Content:
    with open(path, "rb") as f:
        return Content(f.read(size))


def format_mismatch(content: Content, fmt: str, tail: bytes = b"") -> str | None:
    """Why content is not of format ``fmt`` (csv, json, ndjson, parquet, xlsx), or None.

    ``content`` is the file after decompression; ``tail`` its last bytes (Parquet keeps
    its footer there). Encodings are judged elsewhere: text in UTF-16 passes here.
    """
    head = content.head
    kind = content.binary_kind
    if fmt == "parquet":
        if not head.startswith(PARQUET_MAGIC):
            found = kind or ("text" + (f" (it starts with {_shown(head)})" if head.strip() else ""))
            return f"is not a Parquet file: the content is {found}; a Parquet file starts with 'PAR1'"
        if not tail.endswith(PARQUET_MAGIC):
            return "Parquet footer is missing or corrupt (the file may be truncated): it does not end with 'PAR1'"
        return None
    if fmt == "xlsx":
        if head.startswith(OLE_MAGIC):
            return (
                "is an encrypted (password-protected) workbook or a legacy .xls file; "
                "save it as a plain .xlsx without a password"
            )
        if not head.startswith(ZIP_MAGIC):
            return f"is not an .xlsx workbook: the content is {kind or 'text'}; an .xlsx file is a zip archive"
        return None
    if fmt in _TEXT_FORMATS:
        if kind is not None:
            return f"is {kind}, not {fmt.upper()} text"
        if fmt in ("json", "ndjson"):
            first = _first_text_char(head)
            if first is not None and first not in "{[":
                return (
                    f"is not {'JSON' if fmt == 'json' else 'newline-delimited JSON'}: it starts with {first!r}; "
                    "expected an object '{' or an array '['"
                )
    return None


def _first_text_char(head: bytes) -> str | None:
    for bom, codec in ((UTF8_BOM, "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):
            text = head[len(bom) :].decode(codec, errors="replace")
            break
    else:
        text = head.decode("latin-1")
    stripped = text.lstrip()
    return stripped[0] if stripped else None


def _shown(head: bytes) -> str:
    return repr(head[:24].decode("utf-8", errors="replace"))


def reader_error(err: Exception) -> str:
    """A reader's error in one line: its first line, plus the explanation DuckDB puts on a
    later line (e.g. "Maximum line size ... exceeded"), without echoing the offending data."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    said = lines[0]
    if said.endswith(":") or "CSV Error on Line" in said or said.startswith("Invalid Input Error: Error when sniffing"):
        for line in lines[1:4]:
            if not line.startswith("Original Line"):
                said = f"{said.rstrip(':')}: {line}"
                break
    return said[:500]
