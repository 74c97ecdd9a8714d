"""The columns of an Arrow C stream, read from its PyCapsule without pyarrow.

A database driver that speaks the Arrow C data interface (ADBC) hands over a stream that
DuckDB scans directly. Reading its schema here (names, formats, field metadata) lets a
connector say what DuckDB cannot infer, without importing pyarrow and numpy: about a third
of a small incremental run.
"""

import ctypes
import struct
from dataclasses import dataclass


class _ArrowSchema(ctypes.Structure):
    pass


_ArrowSchema._fields_ = [
    ("format", ctypes.c_char_p),
    ("name", ctypes.c_char_p),
    ("metadata", ctypes.c_void_p),
    ("flags", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowSchema))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.CFUNCTYPE(None, ctypes.POINTER(_ArrowSchema))),
    ("private_data", ctypes.c_void_p),
]


class _ArrowArrayStream(ctypes.Structure):
    pass


_ArrowArrayStream._fields_ = [
    ("get_schema", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_ArrowArrayStream), ctypes.POINTER(_ArrowSchema))),
    ("get_next", ctypes.c_void_p),
    ("get_last_error", ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.POINTER(_ArrowArrayStream))),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]

_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


@dataclass(frozen=True)
class Column:
    name: str
    format: str  # the Arrow C format string: "l" int64, "u" utf8, "tsu:UTC" timestamp, ...
    metadata: dict[str, str]


def stream_columns(capsule: object) -> list[Column]:
    """The top-level columns of the ``arrow_array_stream`` capsule; the stream is left unread."""
    stream = _ArrowArrayStream.from_address(_capsule_pointer(capsule, b"arrow_array_stream"))
    schema = _ArrowSchema()
    if stream.get_schema(ctypes.byref(stream), ctypes.byref(schema)) != 0:
        message = stream.get_last_error(ctypes.byref(stream))
        raise RuntimeError(f"reading the stream's schema: {(message or b'unknown error').decode(errors='replace')}")
    try:
        return _columns(schema)
    finally:
        if schema.release:
            schema.release(ctypes.byref(schema))


def schema_columns(capsule: object) -> list[Column]:
    """The top-level columns of an ``arrow_schema`` capsule (a result's schema, before it runs).
    The capsule keeps ownership: it releases the schema when it is collected."""
    return _columns(_ArrowSchema.from_address(_capsule_pointer(capsule, b"arrow_schema")))


def _columns(schema: _ArrowSchema) -> list[Column]:
    return [
        Column(child.name.decode(), child.format.decode(), _metadata(child.metadata))
        for child in (schema.children[i].contents for i in range(schema.n_children))
    ]


def _metadata(address: int | None) -> dict[str, str]:
    """Arrow's metadata encoding: an int32 count, then int32-length-prefixed key and value bytes."""
    if not address:
        return {}
    (count,) = struct.unpack("=i", ctypes.string_at(address, 4))
    found, offset = {}, 4
    for _ in range(count):
        pair = []
        for _ in range(2):
            (length,) = struct.unpack("=i", ctypes.string_at(address + offset, 4))
            pair.append(ctypes.string_at(address + offset + 4, length).decode(errors="replace"))
            offset += 4 + length
        found[pair[0]] = pair[1]
    return found
