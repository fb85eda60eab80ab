"""Building the images: the mesh's Dockerfile targets, and the local helper images.

- the wheelhouse: the CPU torch wheel pip finds on this disk (`pip config list` names the folder),
  in an image the Dockerfile mounts as WHEELHOUSE, so no build downloads a CUDA torch;
- the stores: Debian's PostgreSQL, Redis, Prometheus and Alertmanager on the local base image, for
  the host-network compose run (no registry serves the public images here).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from libs.deploy.base_image import docker_import, image_exists
from libs.deploy.commands import DeployError, log, run

# Dockerfile target -> image, as docker-compose.yml names them.
MESH_TARGETS: dict[str, str] = {
    name: f"medai-mesh/{name}:0.1.0"
    for name in ("envoy", "gateway", "compliance", "monitor", "embedding", "generation", "conversation")
}
STORES_IMAGE = "medai-local/stores:bookworm"
# On every image this tooling builds: what a rebuild leaves untagged is pruned by this label only.
BUILD_LABEL = "org.medai.built-by=compose-test"
WHEELHOUSE_IMAGE = "medai-local/wheelhouse:torch-{version}-cpu"

STORES_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
# No cluster at install time: medai-postgres makes one in the data volume on first start.
RUN mkdir -p /etc/postgresql-common/createcluster.conf.d \\
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf.d/medai.conf \\
 && apt-get update \\
 && apt-get install -y --no-install-recommends postgresql redis-server prometheus prometheus-alertmanager curl \\
 && rm -rf /var/lib/apt/lists/* \\
 && install -d -o postgres -g postgres /var/lib/postgresql/data \\
 && mkdir -p /prometheus /alertmanager
COPY medai-postgres /usr/local/bin/medai-postgres
"""

# The official postgres image's contract (POSTGRES_USER/PASSWORD/DB, PGDATA) on Debian's PostgreSQL.
POSTGRES_ENTRYPOINT = """\
#!/bin/sh
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
user=${POSTGRES_USER:-postgres}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\\n' "${POSTGRES_PASSWORD:?}" > "$pwfile"
  "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-host=scram-sha-256 --auth-local=trust
  rm -f "$pwfile"
  "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses= -c unix_socket_directories=/tmp" -w start
  "$bin/createdb" -h /tmp -U "$user" "${POSTGRES_DB:-$user}"
  "$bin/pg_ctl" -D "$PGDATA" -w stop
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -p "${PGPORT:-5432}"
"""


@dataclass(frozen=True)
class BuiltImage:
    target: str
    image: str
    seconds: float
    size_bytes: int


def docker_build(docker: str) -> list[str]:
    """`docker build` with BuildKit (RUN --mount), the host's network (no bridge here), plain logs."""
    return ["env", "DOCKER_BUILDKIT=1", docker, "build", "--network", "host", "--progress", "plain",
            "--label", BUILD_LABEL]


def image_size(docker: str, image: str) -> int:
    return int(run([docker, "image", "inspect", "--format", "{{.Size}}", image]).stdout.strip())


def pip_find_links() -> list[Path]:
    """Local folders pip searches for wheels (`pip config list`: find-links, any scope)."""
    listed = run([sys.executable, "-m", "pip", "config", "list"], check=False).stdout
    folders: list[Path] = []
    for match in re.finditer(r"^\S*find-links='([^']*)'", listed, re.MULTILINE):
        for entry in match.group(1).split():
            path = Path(entry.removeprefix("file://"))
            if path.is_dir() and path not in folders:
                folders.append(path)
    return folders


def local_torch_wheel(version: str, folders: list[Path]) -> Path | None:
    """The CPU wheel of torch==version for this Python, in one of `folders`."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for folder in folders:
        for wheel in sorted(folder.glob(f"torch-{version}+cpu-{tag}-{tag}-*linux*_x86_64.whl")):
            return wheel
    return None


def ensure_wheelhouse(docker: str, wheel: Path, version: str, work_dir: Path) -> str:
    """An image holding /wheels/<the wheel>; made once."""
    image = WHEELHOUSE_IMAGE.format(version=version)
    if image_exists(docker, image):
        return image
    with tempfile.TemporaryDirectory(prefix="medai-wheelhouse-", dir=work_dir) as folder:
        wheels = Path(folder) / "wheels"
        wheels.mkdir()
        try:
            (wheels / wheel.name).hardlink_to(wheel)
        except OSError:
            shutil.copyfile(wheel, wheels / wheel.name)
        docker_import(docker, Path(folder), image)
    log.info("made %s from %s", image, wheel)
    return image


def ensure_stores_image(docker: str, base_image: str, work_dir: Path, log_file: Path) -> str:
    """The Debian stores image (PostgreSQL, Redis, Prometheus, Alertmanager); built once."""
    if image_exists(docker, STORES_IMAGE):
        return STORES_IMAGE
    with tempfile.TemporaryDirectory(prefix="medai-stores-", dir=work_dir) as folder:
        context = Path(folder)
        (context / "Dockerfile").write_text(STORES_DOCKERFILE)
        entrypoint = context / "medai-postgres"
        entrypoint.write_text(POSTGRES_ENTRYPOINT)
        entrypoint.chmod(0o755)
        run([*docker_build(docker), "--build-arg", f"BASE_IMAGE={base_image}", "-t", STORES_IMAGE, str(context)],
            log_file=log_file, timeout=1800)
    return STORES_IMAGE


def prune_replaced_images(docker: str) -> None:
    """Remove the images earlier builds of this tooling left untagged (a rebuild moves the tag)."""
    run([docker, "image", "prune", "--force", "--filter", f"label={BUILD_LABEL}"], check=False)


def build_target(docker: str, root: Path, target: str, image: str, build_args: dict[str, str],
                 log_file: Path) -> BuiltImage:
    """One Dockerfile target, timed; its size once built."""
    arguments = [part for key, value in build_args.items() for part in ("--build-arg", f"{key}={value}")]
    started = time.monotonic()
    try:
        run([*docker_build(docker), *arguments, "--target", target, "-t", image, str(root)],
            log_file=log_file, timeout=3600)
    except subprocess.TimeoutExpired as error:
        raise DeployError(f"building {target} took over an hour (log: {log_file})") from error
    seconds = time.monotonic() - started
    built = BuiltImage(target, image, seconds, image_size(docker, image))
    log.info("built %-12s %-32s %6.1f s %8.0f MB", target, image, seconds, built.size_bytes / 1e6)
    return built
