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


def main(folder: str) -> None:
    rows = [json.loads(line) for line in (Path(folder) / "findings.jsonl").read_text().splitlines() if line]
    order = {"silent": 0, "loud": 1, "record": 2}
    for (weight, cause), found in sorted(grouped(rows).items(), key=lambda kv: (order[kv[0][0]], -len(kv[1]))):
        where = sorted({f"{r['test'].split('[')[0]}:{r['test'].split('[')[1].split('-')[0].rstrip(']')}/{r['destination']}/{r['mode']}" for r in found})
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
    main(sys.argv[1])
