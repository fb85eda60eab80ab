"""`make bench`: run the benchmarks and write bench/results/report.{json,md}."""
from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench import deidentify_latency, embedding, foundation, gateway, llm, phi_accuracy

BENCHMARKS: dict[str, Callable[[], dict]] = {
    "foundation": foundation.run,
    "embedding": embedding.run,
    "phi_accuracy": phi_accuracy.run,
    "deidentify_latency": deidentify_latency.run,
    "llm": llm.run,
    "gateway": gateway.run,
}
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return {"cpu_cores": psutil.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def write_report(results: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Benchmark report ({results['when']})", "", f"Machine: {results['machine']}", ""]
    for name, figures in results["benchmarks"].items():
        lines += [f"## {name}", "", "```json", json.dumps(figures, indent=2), "```", ""]
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
