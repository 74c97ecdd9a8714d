"""The file sensor's memory: which files it has seen, which are settling, which contents it has run.

A ledger, not a timestamp: a file is known by its name, size and version (modification
time or ETag), and once taken up by a fingerprint of its bytes. A watermark on
modification times would skip files copied in with old or equal times; the ledger does not.

The ledger is the sensor's cursor, which Dagster stores with every tick, so it is kept
compact: every entry is an 8-byte digest (64 bits: a collision among a million files has
odds of about 1 in 30 million), packed and base64-encoded. 10,000 files cost about 210 KB
of cursor; names are never stored. What it holds:

- ``pending``: identities seen but not taken up yet, with the second they were first seen
  with exactly that name, size and version (a file still being written changes identity
  on every look, so it keeps waiting);
- ``taken``: identities taken up, pruned to the files still listed (so it stays the size
  of the folder, not of its history);
- ``contents``: fingerprints of the bytes taken up, newest last, capped at ``MAX_CONTENTS``
  (the same bytes under a new name are recognised as long as they are remembered).
"""

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field

DIGEST_BYTES = 8
MAX_CONTENTS = 50_000
_PENDING = struct.Struct(f">{DIGEST_BYTES}sI")


def digest(*parts: str | int) -> bytes:
    """A short, stable fingerprint of the parts (not a security boundary: a dedup key)."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=DIGEST_BYTES).digest()


def identity(name: str, size: int, version: str) -> bytes:
    return digest("id", name, size, version)


def content_digest(content_id: str) -> bytes:
    return digest("content", content_id)


@dataclass
class Ledger:
    pending: dict[bytes, int] = field(default_factory=dict)  # identity -> unix second first seen
    taken: set[bytes] = field(default_factory=set)
    contents: dict[bytes, None] = field(default_factory=dict)  # insertion-ordered set, oldest first
    rebuilt: bool = False  # True when the cursor was lost and the ledger started over

    def remember_content(self, content: bytes) -> None:
        self.contents[content] = None
        while len(self.contents) > MAX_CONTENTS:
            del self.contents[next(iter(self.contents))]

    def to_cursor(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "pending": _pack(b"".join(_PENDING.pack(d, t) for d, t in sorted(self.pending.items()))),
                "taken": _pack(b"".join(sorted(self.taken))),
                "contents": _pack(b"".join(self.contents)),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "Ledger":
        """The ledger a cursor holds; an empty or unreadable cursor gives an empty ledger marked ``rebuilt``."""
        try:
            raw = json.loads(cursor) if cursor else None
            if not isinstance(raw, dict) or raw.get("v") != 1:
                return cls(rebuilt=True)
            pending = dict(_PENDING.iter_unpack(_unpack(raw["pending"], _PENDING.size)))
            return cls(
                pending=pending,
                taken=set(_chunks(_unpack(raw["taken"]))),
                contents=dict.fromkeys(_chunks(_unpack(raw["contents"]))),
            )
        except (ValueError, KeyError, TypeError, struct.error):
            return cls(rebuilt=True)


def _pack(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unpack(text: str, entry_bytes: int = DIGEST_BYTES) -> bytes:
    data = base64.b64decode(text.encode(), validate=True)
    if len(data) % entry_bytes:
        raise ValueError("truncated ledger")
    return data


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + DIGEST_BYTES] for i in range(0, len(data), DIGEST_BYTES)]
