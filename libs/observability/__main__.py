"""`python -m libs.observability [--check]`: write the alert rules and dashboards from their code
(`--check`: exit 1, naming them, when the committed files differ)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from libs.observability import alerts, dashboards

ROOT = Path(__file__).resolve().parent


def expected() -> dict[str, str]:
    return alerts.files() | dashboards.files()


def drift(root: Path = ROOT) -> list[str]:
    """Generated files missing or stale (and dashboards or rule files no code writes)."""
    wanted = expected()
    present = {str(p.relative_to(root)) for pattern in ("prometheus/rules/*.yml", "grafana/dashboards/*.json")
               for p in root.glob(pattern)}
    stale = [name for name, text in wanted.items() if not (root / name).exists() or (root / name).read_text() != text]
    return sorted(stale + [name for name in present - set(wanted)])


def write(root: Path = ROOT) -> None:
    wanted = expected()
    for pattern in ("prometheus/rules/*.yml", "grafana/dashboards/*.json"):
        for path in root.glob(pattern):
            if str(path.relative_to(root)) not in wanted:
                path.unlink()
    for name, text in wanted.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the generated files drifted")
    if parser.parse_args(argv).check:
        stale = drift()
        if stale:
            print(f"libs/observability drifted from its code: {', '.join(stale)}; run python -m libs.observability",
                  file=sys.stderr)
            return 1
        return 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
