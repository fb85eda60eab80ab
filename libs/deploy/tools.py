"""The host tools `make compose-test` needs, installed from Debian's packages when missing."""
from __future__ import annotations

import os
import shutil

from libs.deploy.commands import DeployError, log, run

# Executable -> the Debian package that provides it.
PACKAGES: dict[str, str] = {
    "dockerd": "docker.io",
    "debootstrap": "debootstrap",
}
# Compose v1 (Debian's docker-compose 1.29) unless a Compose v2 is found (see compose.py).
COMPOSE_V1_PACKAGE = "docker-compose"
# Debian's docker.io CLI: its `docker build` runs BuildKit itself (a newer CLI needs the buildx plugin).
DEBIAN_DOCKER_CLI = "/usr/bin/docker"


def missing_packages(compose_found: bool) -> list[str]:
    missing = [package for executable, package in PACKAGES.items() if shutil.which(executable) is None]
    if not os.path.exists(DEBIAN_DOCKER_CLI) and "docker.io" not in missing:
        missing.append("docker.io")
    if not compose_found:
        missing.append(COMPOSE_V1_PACKAGE)
    return missing


def ensure_packages(compose_found: bool) -> list[str]:
    """apt-get install what is missing (as root); the packages it installed."""
    missing = missing_packages(compose_found)
    if not missing:
        return []
    if os.geteuid() != 0:
        raise DeployError(f"missing {', '.join(missing)}: run as root, or apt-get install them first")
    log.info("installing %s (apt)", " ".join(missing))
    apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    run([*apt, "update", "-qq"], timeout=600)
    run([*apt, "install", "-y", "-qq", "--no-install-recommends", *missing], timeout=1200)
    return missing


def docker_cli() -> str:
    """The docker CLI to drive the engine with (Debian's when present: BuildKit without plugins)."""
    if os.path.exists(DEBIAN_DOCKER_CLI):
        return DEBIAN_DOCKER_CLI
    found = shutil.which("docker")
    if found is None:
        raise DeployError("no docker CLI found (apt-get install docker.io)")
    return found
