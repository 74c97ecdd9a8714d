"""The file sensor's memory: which files it has seen, which are settling, which contents it has run,
which runs it is waiting for and which files did not load.

A ledger, not a timestamp: a file is known by its name, size and version (modification
time or ETag), and once taken up by a fingerprint of its bytes. A watermark on
modification times would skip files copied in with old or equal times; the ledger does not.

The ledger is the sensor's cursor, which Dagster stores with every tick, so it is kept
compact: every entry is an 8-byte digest (64 bits: a collision among a million files has
odds of about 1 in 30 million), packed and base64-encoded. 10,000 files cost about 210 KB
of cursor, and 17 bytes more each while their runs are queued or running; names are never
stored. What it holds:

- ``pending``: identities seen but not taken up yet, with the second they were first seen
  with exactly that name, size and version (a file still being written changes identity
  on every look, so it keeps waiting);
- ``taken``: identities taken up, pruned to the files still listed (so it stays the size
  of the folder, not of its history);
- ``contents``: fingerprints of the bytes taken up, newest last, capped at ``MAX_CONTENTS``
  (the same bytes under a new name are recognised as long as they are remembered);
- ``flights``: the runs asked for whose outcome is not known yet, with the files each covers;
- ``failed``: contents whose run failed for good, with the run and the files still listed
  that hold them, capped at ``MAX_FAILED``; such bytes run again when they are dropped again
  or a retry is asked for (``file_retries.py``);
- ``skipped``: identities never taken up because their name is unusable;
- ``requests_after``: the last retry request read (an event log storage id);
- ``reported``: a digest of the last ``files_not_loaded`` result the sensor reported.
"""

import base64
import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

# Tags of the runs a file sensor asks for: what they cover, so a lost ledger can be rebuilt from them.
TAG_FILE = "etl/file"
TAG_CONTENT = "etl/content_digest"  # a per-file run's bytes
TAG_CONTENTS = "etl/content_digests"  # a batch run's files, as batch_token()s
TAG_FILE_COUNT = "etl/new_files"

DIGEST_BYTES = 8
MAX_CONTENTS = 50_000
MAX_FAILED = 10_000
MAX_ATTEMPT = 0x7F  # one byte in the cursor, with a flag beside it
NO_IDENTITY = bytes(DIGEST_BYTES)  # a member recalled from a run's tags before its file is listed again
_PENDING = struct.Struct(f">{DIGEST_BYTES}sI")
_FLIGHT = struct.Struct(f">I?{DIGEST_BYTES}sI")  # requested at, batch?, batch key, member count
_MEMBER = struct.Struct(f">{DIGEST_BYTES}s{DIGEST_BYTES}sB")  # content, identity, attempt | SEEN
_FAILURE = struct.Struct(f">{DIGEST_BYTES}sBBdBH")  # content, attempt, flags, failed at, run id length, identities
_SEEN = 0x80  # in a member's attempt byte: a run for it has been seen (so it was launched)
_RETRY, _RECALLED = 1, 2


def digest(*parts: str | int) -> bytes:
    """A short, stable fingerprint of the parts (not a security boundary: a dedup key)."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=DIGEST_BYTES).digest()


def identity(name: str, size: int, version: str) -> bytes:
    return digest("id", name, size, version)


def content_digest(content_id: str) -> bytes:
    return digest("content", content_id)


def file_run_key(content: bytes, attempt: int) -> str:
    """The run key of one file's run: its bytes, and how many runs of those bytes failed before."""
    return f"file:{content.hex()}" + (f":retry-{attempt}" if attempt else "")


def batch_token(content: bytes, attempt: int) -> str:
    """One file's part of a batch's run key and of its ``etl/content_digests`` tag."""
    return content.hex() + (f":{attempt}" if attempt else "")


def parse_token(token: str) -> tuple[bytes, int]:
    """(content, attempt) of a ``batch_token`` (or of a plain hex digest, as older runs carry)."""
    hexed, _, attempt = token.partition(":")
    return bytes.fromhex(hexed), int(attempt or 0)


@dataclass
class Member:
    """One file a requested run covers."""

    content: bytes
    identity: bytes
    attempt: int = 0
    seen: bool = False  # a run with its key has been found


@dataclass
class Flight:
    """The runs asked for in one tick, not all finished yet: a batch run (``batch_key`` set) or one
    run per content (members with equal contents share it: the same bytes under two names)."""

    requested_at: int
    members: list[Member]
    batch_key: bytes | None = None

    def run_key(self, member: Member) -> str:
        return (
            f"files:{self.batch_key.hex()}"
            if self.batch_key is not None
            else file_run_key(member.content, member.attempt)
        )


@dataclass
class Failure:
    """Bytes whose run ended without loading them."""

    attempt: int  # of the run that failed; a retry runs attempt + 1
    run_id: str | None  # None: no run was ever found for the request
    failed_at: float  # unix time the run ended (or was given up on)
    identities: set[bytes] = field(default_factory=set)  # listed files holding these bytes
    retry: bool = False  # a retry was asked for and is not taken up yet
    recalled: bool = False  # rebuilt from run tags after a lost cursor: files attach without a retry


@dataclass
class Ledger:
    pending: dict[bytes, int] = field(default_factory=dict)  # identity -> unix second first seen
    taken: set[bytes] = field(default_factory=set)
    contents: dict[bytes, None] = field(default_factory=dict)  # insertion-ordered set, oldest first
    flights: list[Flight] = field(default_factory=list)
    failed: dict[bytes, Failure] = field(default_factory=dict)  # content -> failure, oldest first
    skipped: set[bytes] = field(default_factory=set)
    requests_after: int | None = None
    reported: bytes | None = None
    rebuilt: bool = False  # True when the cursor was lost and the ledger started over

    def remember_content(self, content: bytes) -> None:
        self.contents[content] = None
        while len(self.contents) > MAX_CONTENTS:
            del self.contents[next(iter(self.contents))]

    def record_failure(self, content: bytes, failure: Failure) -> None:
        """Note that ``content`` did not load; files already noted with it stay noted."""
        earlier = self.failed.pop(content, None)
        if earlier is not None:
            failure.identities |= earlier.identities
        self.failed[content] = failure
        while len(self.failed) > MAX_FAILED:
            del self.failed[next(iter(self.failed))]

    def in_flight(self) -> Iterator[tuple[Flight, Member]]:
        for flight in self.flights:
            for member in flight.members:
                yield flight, member

    def to_cursor(self) -> str:
        raw = {
            "v": 2,
            "pending": _pack(b"".join(_PENDING.pack(d, t) for d, t in sorted(self.pending.items()))),
            "taken": _pack(b"".join(sorted(self.taken))),
            "contents": _pack(b"".join(self.contents)),
        }
        if self.flights:
            raw["flights"] = _pack(b"".join(_pack_flight(f) for f in self.flights))
        if self.failed:
            raw["failed"] = _pack(b"".join(_pack_failure(c, f) for c, f in self.failed.items()))
        if self.skipped:
            raw["skipped"] = _pack(b"".join(sorted(self.skipped)))
        if self.requests_after is not None:
            raw["requests_after"] = self.requests_after
        if self.reported is not None:
            raw["reported"] = self.reported.hex()
        return json.dumps(raw, separators=(",", ":"))

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "Ledger":
        """The ledger a cursor holds; an empty or unreadable cursor gives an empty ledger marked ``rebuilt``.
        A cursor of the first version (no runs or failures kept) reads as it was."""
        try:
            raw = json.loads(cursor) if cursor else None
            if not isinstance(raw, dict) or raw.get("v") not in (1, 2):
                return cls(rebuilt=True)
            pending = dict(_PENDING.iter_unpack(_unpack(raw["pending"], _PENDING.size)))
            requests_after = raw.get("requests_after")
            return cls(
                pending=pending,
                taken=set(_chunks(_unpack(raw["taken"]))),
                contents=dict.fromkeys(_chunks(_unpack(raw["contents"]))),
                flights=_unpack_flights(_unpack(raw.get("flights", ""), 1)),
                failed=_unpack_failures(_unpack(raw.get("failed", ""), 1)),
                skipped=set(_chunks(_unpack(raw.get("skipped", "")))),
                requests_after=None if requests_after is None else int(requests_after),
                reported=bytes.fromhex(raw["reported"]) if raw.get("reported") else None,
            )
        except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError):
            return cls(rebuilt=True)


def _pack_flight(flight: Flight) -> bytes:
    header = _FLIGHT.pack(
        flight.requested_at, flight.batch_key is not None, flight.batch_key or bytes(DIGEST_BYTES), len(flight.members)
    )
    members = (
        _MEMBER.pack(m.content, m.identity, min(m.attempt, MAX_ATTEMPT) | (_SEEN if m.seen else 0))
        for m in flight.members
    )
    return header + b"".join(members)


def _unpack_flights(data: bytes) -> list[Flight]:
    flights, at = [], 0
    while at < len(data):
        requested_at, is_batch, key, count = _FLIGHT.unpack_from(data, at)
        at += _FLIGHT.size
        members = []
        for _ in range(count):
            content, ident, attempt = _MEMBER.unpack_from(data, at)
            at += _MEMBER.size
            members.append(Member(content, ident, attempt & ~_SEEN, bool(attempt & _SEEN)))
        flights.append(Flight(requested_at, members, key if is_batch else None))
    return flights


def _pack_failure(content: bytes, failure: Failure) -> bytes:
    run_id = (failure.run_id or "").encode()
    flags = (_RETRY if failure.retry else 0) | (_RECALLED if failure.recalled else 0)
    header = _FAILURE.pack(
        content, min(failure.attempt, MAX_ATTEMPT), flags, failure.failed_at, len(run_id), len(failure.identities)
    )
    return header + run_id + b"".join(sorted(failure.identities))


def _unpack_failures(data: bytes) -> dict[bytes, Failure]:
    failed, at = {}, 0
    while at < len(data):
        content, attempt, flags, failed_at, id_length, count = _FAILURE.unpack_from(data, at)
        at += _FAILURE.size
        run_id = data[at : at + id_length].decode()
        at += id_length
        identities = set(_chunks(data[at : at + count * DIGEST_BYTES]))
        at += count * DIGEST_BYTES
        if len(identities) != count or len(run_id.encode()) != id_length:
            raise ValueError("truncated ledger")
        failed[content] = Failure(
            attempt, run_id or None, failed_at, identities, bool(flags & _RETRY), bool(flags & _RECALLED)
        )
    return failed


def _pack(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unpack(text: str, entry_bytes: int = DIGEST_BYTES) -> bytes:
    data = base64.b64decode(text.encode(), validate=True)
    if len(data) % entry_bytes:
        raise ValueError("truncated ledger")
    return data


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + DIGEST_BYTES] for i in range(0, len(data), DIGEST_BYTES)]
