"""The sync-mode model: what a destination must hold after any sequence of operations.

Rows are (id, seq, v, n): ``id`` the key, ``seq`` the cursor, ``v`` a text, ``n`` a number
written as text (a bad one rejects its row). The model keeps the source (files or a
PostgreSQL table), the table as the contract says it must be, and the saved cursor; it
is written from the README's contract, without the platform.
"""

import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field

from etl_platform_tests.fidelity.compare import csv_file_form

Row = tuple  # (id, seq, v, n-as-text)


def valid(row: Row) -> bool:
    n = row[3]
    return n is None or (n.strip().lstrip("+-").isdigit() and n.isascii() and abs(int(n)) < 2**63)


def typed(row: Row, destination: str) -> tuple:
    """The row as the destination must store it."""
    id_, seq, v, n = row
    return (id_, seq, csv_file_form(v, "varchar") if destination == "csv" else v, None if n is None else int(n))


def csv_bytes(rows: list[Row]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["id", "seq", "v", "n"])
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode()


@dataclass
class Model:
    """The contract's view of one pipeline: ``mode`` with ``key``/``cursor`` as the spec says."""

    mode: str
    keyed: bool
    merge_cursor: bool  # merge orders by the cursor (spec has one)
    files: bool  # the source is files (else a table)
    destination: str
    lookback: int = 0
    table: list[Row] = field(default_factory=list)  # committed rows, in no particular order
    cursor: int | None = None
    source_files: dict[str, list[Row]] = field(default_factory=dict)  # file name -> rows
    source_rows: list[Row] = field(default_factory=list)  # table source, in scan order
    loaded: set = field(default_factory=set)  # contents (sha256) already loaded (append, merge, incremental)
    rewound_to: int | None = None
    full_refresh: bool = False

    # --- what a load reads ---------------------------------------------------------------

    def read(self) -> tuple[list[Row], set]:
        """Rows a load reads, in read order, and the contents it reads (file sources)."""
        if not self.files:
            rows = list(self.source_rows)
            if self.mode == "incremental" and self.bound() is not None:
                rows = [r for r in rows if r[1] >= self.bound()]
            return rows, set()
        rows, contents = [], set()
        for name in sorted(self.source_files):
            digest = hashlib.sha256(csv_bytes(self.source_files[name])).hexdigest()
            if digest in contents:
                continue  # the same bytes twice in one load: once
            if self.mode != "replace" and not self.full_refresh and digest in self.loaded:
                continue
            contents.add(digest)
            rows += self.source_files[name]
        return rows, contents

    def bound(self) -> int | None:
        if self.full_refresh:
            return None
        if self.rewound_to is not None:
            return self.rewound_to
        return None if self.cursor is None else self.cursor - self.lookback

    # --- a load --------------------------------------------------------------------------

    def load(self) -> tuple[bool, int, int]:
        """Apply one load; returns (the load must fail, bad rows read, rows superseded)."""
        rows, contents = self.read()
        accepted = [r for r in rows if valid(r)]
        bad = len(rows) - len(accepted)
        exists = bool(self.source_files) if self.files else True
        if self.mode == "replace" or self.full_refresh:
            if not accepted and exists:
                return True, bad, 0  # NOWIPE: the old table stays
            winners, superseded = self._winners(accepted) if (self.keyed and self.mode != "replace") else (accepted, 0)
            self.table = list(winners)
        elif self.mode == "append":
            self.table += accepted
            superseded = 0
        elif self.mode == "merge":
            winners, superseded = self._winners(accepted)
            self._merge(winners)
        else:
            bound = self.bound()
            if bound is not None:
                accepted = [r for r in accepted if r[1] >= bound]
            if self.rewound_to is not None:
                # A rewind: the table's rows from V on are replaced with the source's rows from V on.
                self.table = [r for r in self.table if r[1] < self.rewound_to]
            if self.keyed:
                winners, superseded = self._winners(accepted)
                self._merge(winners)
            else:
                superseded = 0
                already = Counter(r for r in self.table if bound is None or r[1] >= bound)
                for row in accepted:
                    if already[row]:
                        already[row] -= 1
                    else:
                        self.table.append(row)
        if self.mode == "incremental":
            self.cursor = max((r[1] for r in self.table), default=None)
        if self.mode != "replace":
            self.loaded |= contents
        self.rewound_to, self.full_refresh = None, False
        return False, bad, superseded

    def _winners(self, rows: list[Row]) -> tuple[list[Row], int]:
        """The latest row per key: the highest cursor if the spec has one, else the one read last."""
        by_key: dict[int, tuple[int, Row]] = {}
        for position, row in enumerate(rows):
            rank = (row[1] if (self.merge_cursor or self.mode == "incremental") else 0, position)
            if row[0] not in by_key or rank >= by_key[row[0]][0]:
                by_key[row[0]] = (rank, row)
        winners = [row for _, row in by_key.values()]
        return winners, len(rows) - len(winners)

    def _merge(self, winners: list[Row]) -> None:
        keys = {r[0] for r in winners}
        self.table = [r for r in self.table if r[0] not in keys] + winners

    # --- state commands ------------------------------------------------------------------

    def rewind(self, to: int) -> None:
        self.cursor = to
        self.rewound_to = to
        self.loaded.clear()

    def reset(self) -> None:
        self.cursor = None
        self.full_refresh = True
        self.loaded.clear()

    def expected_rows(self) -> list[tuple]:
        return [typed(r, self.destination) for r in self.table]
