"""What the harness saw across a run: cases, findings, and per source kind and type what landed.

The summary line and the type table are written from this at the end of the session
(fidelity/conftest.py), from observations only.
"""

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tally:
    cases: int = 0
    exact: int = 0
    silent: int = 0
    sources: set = field(default_factory=set)
    destinations: set = field(default_factory=set)
    modes: set = field(default_factory=set)
    findings: list = field(default_factory=list)  # dicts, for the report
    # (source kind, target type, holder) -> destination -> stored column types
    column_types: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(set)))
    # (source kind, target type, holder) -> value classes the platform rejected / accepted / changed
    rejected_classes: dict = field(default_factory=lambda: defaultdict(set))
    accepted_classes: dict = field(default_factory=lambda: defaultdict(set))
    changed_classes: dict = field(default_factory=lambda: defaultdict(set))

    def case(self, *, source: str, destination: str, mode: str, findings: list, test: str) -> None:
        self.cases += 1
        self.sources.add(source)
        self.destinations.add(destination)
        self.modes.add(mode)
        silent = [f for f in findings if f.weight == "silent"]
        self.silent += len(silent)
        if not findings:
            self.exact += 1
        for f in findings:
            self.findings.append(
                {
                    "test": test,
                    "source": source,
                    "destination": destination,
                    "mode": mode,
                    "weight": f.weight,
                    "cause": f.cause,
                    "message": f.message,
                }
            )

    def summary(self) -> str:
        return (
            f"fidelity: {self.cases} cases, {self.exact} exact, {self.silent} silent changes "
            f"({len(self.sources)} sources x {len(self.destinations)} destinations x {len(self.modes)} modes)"
        )


TALLY = Tally()


def report_folder() -> Path | None:
    """ETL_FIDELITY_REPORT names a folder for the type table and every finding of the run."""
    folder = os.environ.get("ETL_FIDELITY_REPORT")
    return Path(folder) if folder else None


def write_report(tally: Tally, folder: Path) -> None:
    from etl_platform_tests.fidelity.type_table import type_table

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "type_table.md").write_text(type_table(tally))
    (folder / "observations.json").write_text(json.dumps(observations(tally), ensure_ascii=False, indent=1))
    with (folder / "findings.jsonl").open("w") as out:
        for finding in tally.findings:
            out.write(json.dumps(finding, ensure_ascii=False) + "\n")


def observations(tally: Tally) -> list[dict]:
    """What the type table is made of, as JSON (several runs' observations can be merged)."""
    keys = set(tally.column_types) | set(tally.rejected_classes) | set(tally.changed_classes)
    return [
        {
            "key": list(key),
            "types": {d: sorted(t) for d, t in tally.column_types.get(key, {}).items()},
            "rejected": sorted(tally.rejected_classes.get(key, ())),
            "changed": sorted(tally.changed_classes.get(key, ())),
        }
        for key in sorted(keys)
    ]


def merged(files: list[Path]) -> Tally:
    """One tally of the observations of several runs."""
    tally = Tally()
    for path in files:
        for item in json.loads(path.read_text()):
            key = tuple(item["key"])
            for destination, types in item["types"].items():
                tally.column_types[key][destination].update(types)
            tally.rejected_classes[key].update(item["rejected"])
            tally.changed_classes[key].update(item["changed"])
    return tally
