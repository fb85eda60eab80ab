"""Copies of the observability files inside the kustomization root (kustomize refuses files outside it).

libs/observability stays the one source: this writes k8s/base/observability/ from it (the Prometheus
rule files and the Grafana dashboards, and the kustomization that turns them into ConfigMaps), and
`--check` fails when the copies drift (a test runs it).

    python -m libs.deploy.observability [--check]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "libs" / "observability"
TARGET = ROOT / "k8s" / "base" / "observability"
RULES_CONFIGMAP = "medai-prometheus-rules"
DASHBOARDS_CONFIGMAP = "medai-grafana-dashboards"
# Labels the common discovery sidecars look for (kube-prometheus-stack's Grafana, Prometheus configs).
RULES_LABELS = {"prometheus_rule": "1", "app.kubernetes.io/component": "observability"}
DASHBOARDS_LABELS = {"grafana_dashboard": "1", "app.kubernetes.io/component": "observability"}
HEADER = "# Written by `python -m libs.deploy.observability` from libs/observability: edit there, then run it.\n"


def sources(source: Path = SOURCE) -> dict[str, Path]:
    """Relative path under the target -> source file."""
    found = {f"rules/{path.name}": path for path in sorted((source / "prometheus" / "rules").glob("*.yml"))}
    found |= {f"dashboards/{path.name}": path for path in sorted((source / "grafana" / "dashboards").glob("*.json"))}
    return found


def kustomization(files: list[str]) -> str:
    """The sub-kustomization: one ConfigMap of rules, one of dashboards, stable names (found by label)."""
    def generator(name: str, prefix: str, labels: dict[str, str]) -> dict:
        return {"name": name, "files": [f for f in files if f.startswith(prefix)],
                "options": {"disableNameSuffixHash": True, "labels": labels}}

    document = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "configMapGenerator": [generator(RULES_CONFIGMAP, "rules/", RULES_LABELS),
                               generator(DASHBOARDS_CONFIGMAP, "dashboards/", DASHBOARDS_LABELS)],
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False)


def expected(source: Path = SOURCE) -> dict[str, str]:
    """Relative path under the target -> the text it must have."""
    files = sources(source)
    wanted = {relative: path.read_text() for relative, path in files.items()}
    wanted["kustomization.yaml"] = kustomization(list(files))
    return wanted


def present(target: Path = TARGET) -> dict[str, str]:
    return {str(path.relative_to(target)): path.read_text() for path in sorted(target.rglob("*")) if path.is_file()}


def drift(source: Path = SOURCE, target: Path = TARGET) -> list[str]:
    """Files missing, stale or extra in the target."""
    wanted, found = expected(source), present(target)
    return sorted(name for name in wanted.keys() | found.keys() if wanted.get(name) != found.get(name))


def write(source: Path = SOURCE, target: Path = TARGET) -> None:
    wanted = expected(source)
    for name in set(present(target)) - set(wanted):
        (target / name).unlink()
    for name, text in wanted.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when k8s/base/observability has drifted")
    args = parser.parse_args(argv)
    if args.check:
        stale = drift()
        if stale:
            print(f"k8s/base/observability drifted from libs/observability: {', '.join(stale)}; run "
                  "python -m libs.deploy.observability", file=sys.stderr)
            return 1
        return 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
