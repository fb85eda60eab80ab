"""`make bench`: run the benchmarks and write bench/results/report.{json,md}.

`python -m bench NAME ...` runs some of them; their figures replace those of the same names in the
report, the others' stay (each benchmark keeps the date it was run)."""
from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench import (
    cpu,
    deidentify_latency,
    embedding,
    foundation,
    gateway,
    llm,
    mtls,
    openai_routes,
    phi_accuracy,
    reidentification,
)

BENCHMARKS: dict[str, Callable[[], dict]] = {
    "foundation": foundation.run,
    "embedding": embedding.run,
    "phi_accuracy": phi_accuracy.run,
    "deidentify_latency": deidentify_latency.run,
    "llm": llm.run,
    "gateway": gateway.run,
    "reidentification": reidentification.run,
    "cpu": cpu.run,
    "openai_routes": openai_routes.run,
    "mtls": mtls.run,
}
RESULTS = Path(__file__).resolve().parent / "results"
# A benchmark's figures may carry lines of Markdown (tables, a profile) shown above its JSON in report.md.
MARKDOWN = "markdown"


def machine() -> dict:
    return {"cpu_cores": psutil.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def merged(results: dict, path: Path) -> dict:
    """results, with the figures of benchmarks not run this time taken from the report at path."""
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return results
    benchmarks = {name: figures for name, figures in previous.get("benchmarks", {}).items()
                  if name in BENCHMARKS and name not in results["benchmarks"]}
    when = previous.get("when_by_benchmark") or dict.fromkeys(benchmarks, previous.get("when"))
    ordered = {name: results["benchmarks"].get(name, benchmarks.get(name)) for name in BENCHMARKS
               if name in results["benchmarks"] or name in benchmarks}
    return {**results, "benchmarks": ordered,
            "when_by_benchmark": {name: results["when"] if name in results["benchmarks"] else when.get(name)
                                  for name in ordered}}


def write_report(results: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    results = merged(results, RESULTS / "report.json")
    (RESULTS / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Benchmark report ({results['when']})", "", f"Machine: {results['machine']}", ""]
    for name, figures in results["benchmarks"].items():
        when = results.get("when_by_benchmark", {}).get(name)
        lines += [f"## {name}" + (f" ({when})" if when and when != results["when"] else ""), ""]
        lines += [*figures.get(MARKDOWN, []), ""] if figures.get(MARKDOWN) else []
        shown = {key: value for key, value in figures.items() if key != MARKDOWN}
        lines += ["```json", json.dumps(shown, indent=2), "```", ""]
    path = RESULTS / "report.md"
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    names = parser.parse_args().names or list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    results = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(), "benchmarks": {}}
    for name in names:
        print(f"running {name} ...", flush=True)
        results["benchmarks"][name] = BENCHMARKS[name]()
        print(json.dumps(results["benchmarks"][name], indent=2), flush=True)
    print(f"report: {write_report(results)}")


if __name__ == "__main__":
    main()
