"""Turn the measurements into the summary dict (saved as last_run.json) and the printed table."""

from statistics import median

from benchmarks.processes import Measured

LABEL_WIDTH = 16


def _rounds(runs: list[Measured], fields: tuple[str, ...]) -> list[dict]:
    return [
        {
            "process_seconds": round(run.wall_seconds, 3),
            "peak_mib": round(run.peak_mib, 1),
            "address_space_peak_mib": _kib_to_mib(run.result.get("address_space_peak_kib")),
            **{name: run.result[name] for name in fields},
        }
        for run in runs
    ]


def _kib_to_mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def _medians(runs: list[Measured]) -> dict:
    return {
        "median_seconds": round(median(run.result["seconds"] for run in runs), 3),
        "median_process_seconds": round(median(run.wall_seconds for run in runs), 3),
        "peak_mib": round(max(run.peak_mib for run in runs), 1),  # the highest over all rounds
    }


def summarize(
    *,
    args: dict,
    machine: dict,
    csv: dict,
    floor: list[Measured],
    ours: list[Measured],
    location: Measured,
    validate: Measured,
    many: Measured,
) -> dict:
    """Everything measured, as one JSON-able dict. Seconds are medians over rounds where there are rounds."""
    last = ours[-1].result
    plain = {
        **_medians(floor),
        "median_close_seconds": round(median(run.result["close_seconds"] for run in floor), 3),
        "rounds": _rounds(floor, ("seconds", "close_seconds", "rows")),
        **{k: floor[-1].result[k] for k in ("duckdb_version", "threads", "memory_limit")},
    }
    pipeline = {
        **_medians(ours),
        "median_load_step_seconds": round(median(run.result["duration_seconds"] for run in ours), 3),
        "rounds": _rounds(
            ours,
            (
                "seconds",
                "definitions_seconds",
                "instance_seconds",
                "duration_seconds",
                "rows_read",
                "rows_accepted",
                "rows_rejected",
            ),
        ),
        **{k: last[k] for k in ("rows_read", "rows_accepted", "rows_rejected", "dagster_version")},
    }
    return {
        "args": args,
        "machine": machine,
        "csv": csv,
        "plain_duckdb": plain,
        "pipeline": pipeline,
        "ratio": round(pipeline["median_seconds"] / plain["median_seconds"], 3),
        # The pipeline's time includes closing its connection; this ratio gives the floor its close too.
        "ratio_with_close": round(
            pipeline["median_seconds"] / (plain["median_seconds"] + plain["median_close_seconds"]), 3
        ),
        "ratio_load_step": round(pipeline["median_load_step_seconds"] / plain["median_seconds"], 3),
        "code_location": {
            "definitions_seconds": round(location.result["seconds"], 3),
            "import_dagster_seconds": round(location.result["import_dagster_seconds"], 3),
            **_loaded(location),
            "cli_validate_seconds": round(validate.wall_seconds, 3),
            "cli_validate_peak_mib": round(validate.peak_mib, 1),
        },
        "many_pipelines": {
            "pipelines": many.result["pipelines"],
            "seconds": round(many.result["seconds"], 3),
            **_loaded(many),
        },
    }


def _loaded(probe) -> dict:
    """What every code-location measurement reports: jobs, process time, memory, sizes."""
    return {
        "jobs_seconds": round(probe.result["jobs_seconds"], 3),
        "process_seconds": round(probe.wall_seconds, 3),
        "peak_mib": round(probe.peak_mib, 1),
        "assets": probe.result["assets"],
        "jobs": probe.result["jobs"],
    }


def table(s: dict) -> str:
    """The summary as aligned plain text."""
    csv, plain, ours, loc, many = s["csv"], s["plain_duckdb"], s["pipeline"], s["code_location"], s["many_pipelines"]
    timing = "median {:6.2f} s   peak {:5.0f} MiB   (process {:.2f} s"
    per_pipeline_ms = many["seconds"] / many["pipelines"] * 1000
    lines = [
        ("rows", f"{csv['rows']:,}  (file {csv['bytes'] / 2**20:.1f} MiB)"),
        (
            "plain DuckDB",
            timing.format(plain["median_seconds"], plain["peak_mib"], plain["median_process_seconds"])
            + f"; then close {plain['median_close_seconds']:.2f} s; DuckDB {plain['duckdb_version']},"
            f" {plain['threads']} threads, memory_limit {plain['memory_limit']})",
        ),
        (
            "our pipeline",
            timing.format(ours["median_seconds"], ours["peak_mib"], ours["median_process_seconds"])
            + f"; load step {ours['median_load_step_seconds']:.2f} s)",
        ),
        (
            "  rows",
            f"read {ours['rows_read']:,} = accepted {ours['rows_accepted']:,} + rejected {ours['rows_rejected']:,}",
        ),
        (
            "ratio",
            f"{s['ratio']:.2f}x  ({s['ratio_with_close']:.2f}x if plain DuckDB's close counts;"
            f" load step alone {s['ratio_load_step']:.2f}x)",
        ),
        (
            "code location",
            f"demo {loc['definitions_seconds']:.2f} s (+ import dagster {loc['import_dagster_seconds']:.2f} s;"
            f" whole process {loc['process_seconds']:.2f} s, peak {loc['peak_mib']:.0f} MiB)",
        ),
        ("  CLI", f"`dagster definitions validate` {loc['cli_validate_seconds']:.2f} s wall"),
        (
            f"{many['pipelines']} pipelines",
            f"{many['seconds']:.2f} s  ({per_pipeline_ms:.1f} ms per pipeline, {many['assets']:,} assets;"
            f" whole process {many['process_seconds']:.2f} s, peak {many['peak_mib']:.0f} MiB)",
        ),
        (
            "  jobs left",
            f"+{many['jobs_seconds']:.2f} s: what Dagster still resolves when it serves the location"
            f" (the all-assets job; the {many['jobs']:,} pipeline jobs are resolved within the load)",
        ),
    ]
    many_total = many["seconds"] + many["jobs_seconds"]
    demo_total = loc["definitions_seconds"] + loc["jobs_seconds"]
    targets = [
        (
            s["ratio_with_close"] <= 1.5,
            f"ours <= 1.5x plain DuckDB, like for like (its close counts): {s['ratio_with_close']:.2f}x",
        ),
        (ours["peak_mib"] <= 1536, f"peak memory <= 1.5 GiB: {ours['peak_mib']:.0f} MiB"),
        (demo_total <= 3, f"demo code location <= 3 s: {demo_total:.2f} s with its jobs"),
        (many_total <= 10, f"{many['pipelines']} pipelines <= 10 s: {many_total:.2f} s with their jobs"),
    ]
    lines += [
        ("targets" if i == 0 else "", f"{'met    ' if ok else 'MISSED '} {text}")
        for i, (ok, text) in enumerate(targets)
    ]
    return "\n".join(
        f"{label:<{LABEL_WIDTH}}: {text}" if label else f"{'':<{LABEL_WIDTH}}  {text}" for label, text in lines
    )
