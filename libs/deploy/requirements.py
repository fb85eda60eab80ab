"""The requirements of pyproject extras, without the package itself: `python requirements.py EXTRA...`.

The image build installs these in a layer keyed on pyproject.toml only (the sources change far more
often than the dependencies). Standard library only: it runs from a bind mount before any install.
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_SELF_EXTRA = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)\[(?P<extras>[^\]]+)\]")


def requirements(project: dict, extras: list[str]) -> list[str]:
    """The core dependencies plus every named extra's, self references (`pkg[other]`) resolved."""
    name = project["name"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    found: list[str] = list(project.get("dependencies", []))
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"{name} has no extra {extra!r} (known: {', '.join(sorted(optional))})")
        seen.add(extra)
        for requirement in optional[extra]:
            match = _SELF_EXTRA.match(requirement)
            if match and match["name"].lower().replace("_", "-") == name:
                pending.extend(part.strip() for part in match["extras"].split(","))
            else:
                found.append(requirement)
    return list(dict.fromkeys(found))


def main(argv: list[str]) -> None:
    pyproject = Path(__file__).with_name("pyproject.toml")
    if not pyproject.is_file():  # run from the repository, not the build's bind mount
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    print("\n".join(requirements(project, argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
