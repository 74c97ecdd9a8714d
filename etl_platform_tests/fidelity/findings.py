"""Group the findings of a survey run by probable cause.

    ETL_FIDELITY_COLLECT=1 ETL_FIDELITY_REPORT=/tmp/fidelity bash scripts/test -m fidelity
    .venv/bin/python -m etl_platform_tests.fidelity.findings /tmp/fidelity

ETL_FIDELITY_COLLECT=1 records every finding and goes on (nothing shrinks); the report folder
gets ``findings.jsonl`` and ``type_table.md``. This prints, per cause, how often it was seen,
where (source kind x destination x mode) and one message as an example.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path


def grouped(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["weight"], row["cause"])].append(row)
    return groups


TYPES = (
    "varchar",
    "bigint",
    "integer",
    "smallint",
    "double",
    "decimal",
    "boolean",
    "date",
    "timestamptz",
    "timestamp",
    "time",
    "json",
    "uuid",
)


def type_of(row: dict) -> str:
    """The target type a finding is about, from its cause ('decimal: ...', '... not a valid decimal(38,10)')."""
    for name in TYPES:
        if row["cause"].startswith(name + ":") or f"valid {name}" in row["cause"]:
            return name
    return "-"


def matrix(rows: list[dict]) -> None:
    """Per source kind and type: silent/loud findings in each destination (record findings left out)."""
    cells: dict[tuple, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row in rows:
        if row["weight"] == "record":
            continue
        cells[(row["source"], row["mode"], type_of(row))][row["destination"]][
            0 if row["weight"] == "silent" else 1
        ] += 1
    destinations = ("warehouse", "postgres", "parquet", "csv")
    print("| source | mode | type | " + " | ".join(destinations) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in destinations) + " |")
    for (source, mode, kind), by in sorted(cells.items()):
        shown = [f"{by[d][0]} silent, {by[d][1]} loud" if d in by else "ok" for d in destinations]
        print(f"| {source} | {mode} | {kind} | " + " | ".join(shown) + " |")


def _test_case(test: str) -> str:
    """'test_types[csv-...]' -> 'test_types:csv'; a test without parameters is its name."""
    name, _, params = test.partition("[")
    return f"{name}:{params.split('-')[0].rstrip(']')}" if params else name


def main(folder: str) -> None:
    rows = [json.loads(line) for line in (Path(folder) / "findings.jsonl").read_text().splitlines() if line]
    if "--matrix" in sys.argv:
        matrix(rows)
        return
    order = {"silent": 0, "loud": 1, "record": 2}
    for (weight, cause), found in sorted(grouped(rows).items(), key=lambda kv: (order[kv[0][0]], -len(kv[1]))):
        where = sorted({f"{_test_case(r['test'])}/{r['destination']}/{r['mode']}" for r in found})
        print(f"[{weight}] {cause}: {len(found)} finding(s)")
        print(f"    where: {', '.join(where[:12])}{' ...' if len(where) > 12 else ''}")
        seen = set()
        for r in found:
            if r["test"] in seen or len(seen) >= 3:
                continue
            seen.add(r["test"])
            print(f"    e.g. {r['message'][:400]}")
        print()


if __name__ == "__main__":
    main(sys.argv[1])  # add --matrix for the table of findings per source kind, mode, type and destination
