"""An .xlsx workbook looked at as the zip archive it is, before any XML parser sees it.

Refused, with the reason: a password-encrypted workbook (an OLE2 container, not a
zip), a workbook with macros (vbaProject.bin or a macro-enabled content type), one
whose parts would unpack past the size limit, and any part that declares a DOCTYPE
or XML entities (the way entity-expansion "billion laughs" attacks start; Excel
never writes them). openpyxl also parses through defusedxml, which refuses entities.
"""

import re
import zipfile
from pathlib import Path

_SCAN_BYTES = 65536
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_MACRO_TYPES = re.compile(rb"macroEnabled|vbaProject", re.IGNORECASE)


def refusal(path: Path, ceiling: int, setting: str) -> str | None:
    """Why the workbook must not be opened, or None."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        return f"is not a readable .xlsx workbook (damaged zip archive: {err})"
    with archive:
        members = archive.infolist()
        names = {m.filename.lower() for m in members}
        if any(name.endswith("vbaproject.bin") for name in names):
            return "contains macros (vbaProject.bin); save it as a plain .xlsx workbook without macros"
        if "[content_types].xml" not in names or not any(n.startswith("xl/") for n in names):
            return "is a zip archive but not an .xlsx workbook (no [Content_Types].xml or xl/ folder)"
        unpacked = sum(m.file_size for m in members)
        if unpacked > ceiling:
            return f"unpacks to {unpacked:,} bytes, over the limit of {ceiling:,} ({setting})"
        for member in members:
            if not member.filename.lower().endswith((".xml", ".rels", ".vml")):
                continue
            if member.flag_bits & 0x1:
                return f"has an encrypted part ({member.filename}); save it without a password"
            try:
                with archive.open(member) as part:
                    start = part.read(_SCAN_BYTES)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as err:
                return f"is not a readable .xlsx workbook ({member.filename}: {err})"
            if start.startswith((b"\xff\xfe", b"\xfe\xff")):
                start = start.decode("utf-16", errors="replace").encode("utf-8")
            if _DTD.search(start):
                return (
                    f"declares a DOCTYPE or XML entities in {member.filename}; refused as a possible "
                    "entity-expansion (XML bomb) attack"
                )
            if member.filename == "[Content_Types].xml" and _MACRO_TYPES.search(start):
                return "is a macro-enabled workbook (.xlsm content); save it as a plain .xlsx workbook without macros"
    return None
