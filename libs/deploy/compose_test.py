"""`make compose-test`: build the images here, start the compose stack, ask it through Envoy, tear down.

    python -m libs.deploy.compose_test [--compose v1|v2] [--fresh]

1. installs what is missing (docker.io, debootstrap, docker-compose; apt), starts dockerd with
   --bridge=none --iptables=false unless an engine answers;
2. makes the local base image (debootstrap + docker import) unless present, the torch wheelhouse
   and the Debian stores image, then builds every mesh target (BuildKit, timed, sized);
3. makes the development CA and a certificate folder per identity (mesh mTLS, `medai certs dev` and
   `export`, owned by the images' users), `up -d` of docker-compose.yml + docker-compose.hostnet.yml
   (host network, loopback only), waits for every healthcheck, then through Envoy on 127.0.0.1:8080:
   /health SERVING, a generation, an embedding, a de-identification, an audit verify; HTTPS on 8443;
   and every Prometheus target up (HTTPS scrapes with Prometheus's client certificate);
4. `down -v` and stops the dockerd it started, on success, failure or SIGTERM alike.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import secrets
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from libs.deploy import images, smoke
from libs.deploy.base_image import DEFAULT_IMAGE, ensure_base_image, host_mirror
from libs.deploy.commands import DeployError, log, run, tail
from libs.deploy.compose import ComposeProject, compose_command, compose_v1
from libs.deploy.engine import docker_engine
from libs.deploy.tools import docker_cli, ensure_packages
from libs.tls.identity import EDGE_CERT, MESH_IDENTITIES
from libs.tls.issue import ensure_dev_certificates, export_per_identity

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = (ROOT / "docker-compose.yml", ROOT / "docker-compose.hostnet.yml")
# Everything but Jaeger and Grafana (no Debian package: no local image of them here).
SERVICES = ("postgres", "redis", "prometheus", "alertmanager", "monitor", "compliance", "generation", "embedding",
            "conversation", "gateway", "envoy")
PROMETHEUS_JOBS = {"gateway", "compliance", "generation", "embedding", "conversation", "monitor", "envoy",
                   "prometheus", "alertmanager"}
EDGE = "http://127.0.0.1:8080"
EDGE_TLS = "https://localhost:8443"
PROMETHEUS = "http://127.0.0.1:9090"
# Host ports the stack listens on (host network); the stores' are options.
MESH_PORTS = (8080, 8443, 9901, 9902, 9090, 9093, *range(50051, 50057), *range(9101, 9107))
# The images' users: every MedServe image runs as 10001; the stores image's Prometheus as root (hostnet).
CONTAINER_UID = 10001


@dataclass
class Report:
    started_dockerd: bool = False
    installed_packages: list[str] = field(default_factory=list)
    base_image_seconds: float | None = None
    helper_images_seconds: float = 0.0
    images: list[images.BuiltImage] = field(default_factory=list)
    build_seconds: float = 0.0
    start_seconds: float = 0.0
    containers: list[str] = field(default_factory=list)
    checks: list[smoke.Check] = field(default_factory=list)
    total_seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"compose-test: {'dockerd started for this run' if self.started_dockerd else 'running engine used'}"]
        if self.installed_packages:
            out.append(f"  installed: {' '.join(self.installed_packages)}")
        if self.base_image_seconds is not None:
            out.append(f"  base image (debootstrap + import): {self.base_image_seconds:.0f} s")
        out.append(f"  helper images (wheelhouse, stores): {self.helper_images_seconds:.0f} s")
        out.append(f"  mesh images: {self.build_seconds:.0f} s")
        for built in self.images:
            size = built.size_bytes / 1e6
            out.append(f"    {built.target:<13} {built.image:<32} {size:7.0f} MB {built.seconds:6.1f} s")
        out.append(f"  stack up to every healthcheck healthy: {self.start_seconds:.0f} s ({len(self.containers)} "
                   "containers)")
        for check in self.checks:
            out.append(f"    ok {check.name:<18} {check.seconds:5.1f} s  {check.detail}")
        out.append(f"  total: {self.total_seconds:.0f} s")
        return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", choices=("v1", "v2"), default="v1", help="Compose version to run (default v1)")
    parser.add_argument("--base-image", default=DEFAULT_IMAGE)
    parser.add_argument("--torch-version", default="2.13.0", help="the CPU torch wheel to look for on this disk")
    parser.add_argument("--project", default="medai-compose-test")
    parser.add_argument("--postgres-port", type=int, default=15432)
    parser.add_argument("--redis-port", type=int, default=16379)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for every container to be healthy")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "compose-test")
    parser.add_argument("--fresh", action="store_true",
                        help="remove the images and build cache first (a cold build: base image included)")
    return parser.parse_args(argv)


def ports_in_use(ports: list[int]) -> list[int]:
    """Ports of 127.0.0.1 something already listens on (the host network is shared)."""
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def remove_images(docker: str, base_image: str) -> None:
    """For a cold run: the mesh, helper and base images, and BuildKit's cache."""
    names = [*images.MESH_TARGETS.values(), images.STORES_IMAGE, base_image]
    names += run([docker, "images", "--format", "{{.Repository}}:{{.Tag}}", "medai-local/wheelhouse"]).stdout.split()
    run([docker, "image", "rm", "--force", *names], check=False)
    run([docker, "builder", "prune", "--all", "--force"], check=False)
    log.info("removed the images and the build cache (--fresh)")


def make_certificates(work_dir: Path) -> Path:
    """A development CA and one certificate folder per identity for this run (mounted read-only by each
    container); returns the folder of folders (MEDAI_TLS_DIR)."""
    issued, folders = work_dir / "tls", work_dir / "compose-tls"
    ensure_dev_certificates(issued, "medai.local", 30, renew=True)
    export_per_identity(issued, folders, owners=dict.fromkeys([*MESH_IDENTITIES, EDGE_CERT], CONTAINER_UID))
    log.info("mesh certificates (development CA) in %s", folders)
    return folders


def write_env_file(path: Path, args: argparse.Namespace, tls_dir: Path) -> None:
    """Compose's variables: fresh secrets for this run, the moved store ports, the local images, the
    certificate folders."""
    values = {
        "MEDAI_TLS_DIR": str(tls_dir),
        "APP_SECRET_KEY": secrets.token_hex(32),
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "MEDAI_HOSTNET_POSTGRES_PORT": str(args.postgres_port),
        "MEDAI_HOSTNET_REDIS_PORT": str(args.redis_port),
        "MEDAI_HOSTNET_STORES_IMAGE": images.STORES_IMAGE,
        "MEDAI_BASE_IMAGE": args.base_image,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))


def build_all(docker: str, args: argparse.Namespace, report: Report) -> None:
    logs = args.work_dir / "logs"
    started = time.monotonic()
    if ensure_base_image(docker, args.base_image, host_mirror(), args.work_dir, logs / "debootstrap.log"):
        report.base_image_seconds = time.monotonic() - started
    started = time.monotonic()
    build_args = {"BASE_IMAGE": args.base_image}
    wheel = images.local_torch_wheel(args.torch_version, images.pip_find_links())
    if wheel is not None:
        build_args["WHEELHOUSE"] = images.ensure_wheelhouse(docker, wheel, args.torch_version, args.work_dir)
        build_args["TORCH_SPEC"] = f"torch=={args.torch_version}+cpu"
    else:
        log.warning("no CPU torch %s wheel on this disk: the build downloads it", args.torch_version)
    images.ensure_stores_image(docker, args.base_image, args.work_dir, logs / "stores.log")
    report.helper_images_seconds = time.monotonic() - started
    started = time.monotonic()
    for target, image in images.MESH_TARGETS.items():
        report.images.append(images.build_target(docker, ROOT, target, image, build_args, logs / f"{target}.log"))
    report.build_seconds = time.monotonic() - started
    images.prune_replaced_images(docker)


# The container whose image has the whole CLI (keys, audit: cryptography) and the audit signing key.
CLI_SERVICE = "compliance"


def create_admin_key(project: ComposeProject) -> str:
    answer = project.run("exec", "-T", CLI_SERVICE, "medai", "keys", "create", "--role", "admin", "--name",
                         "compose-test")
    key = answer.stdout.strip().splitlines()[-1].strip() if answer.stdout.strip() else ""
    if not key:
        raise DeployError(f"medai keys create printed no key: {tail(answer.stderr)}")
    return key


def cli_audit_verify(project: ComposeProject) -> str:
    """`medai audit verify` (exit 0: chain intact) in the container that signs the checkpoints."""
    answer = project.run("exec", "-T", CLI_SERVICE, "medai", "audit", "verify", check=False)
    if answer.returncode != 0:
        raise DeployError(f"medai audit verify exited {answer.returncode}: {tail(answer.stdout + answer.stderr)}")
    return tail(answer.stdout, 1)


def run_checks(project: ComposeProject, report: Report) -> None:
    report.checks.append(smoke.timed("health", lambda: smoke.check_health(EDGE)))
    ca_file = project.env_file.parent / "tls" / "ca.crt"
    report.checks.append(smoke.timed("edge TLS", lambda: smoke.check_edge_tls(EDGE_TLS, ca_file)))
    key = create_admin_key(project)
    report.checks.append(smoke.timed("generation", lambda: smoke.check_generation(EDGE, key)))
    report.checks.append(smoke.timed("embedding", lambda: smoke.check_embedding(EDGE, key)))
    report.checks.append(smoke.timed("de-identification", lambda: smoke.check_deidentification(EDGE, key)))
    report.checks.append(smoke.timed("audit verify", lambda: smoke.check_audit(EDGE, key)))
    report.checks.append(smoke.timed("medai audit verify", lambda: cli_audit_verify(project)))
    report.checks.append(smoke.timed("prometheus", lambda: smoke.check_prometheus(PROMETHEUS, PROMETHEUS_JOBS)))


@contextlib.contextmanager
def running_stack(project: ComposeProject, args: argparse.Namespace, report: Report) -> Iterator[None]:
    """`up -d` and every healthcheck healthy; `down -v` afterwards, whatever happened."""
    started = time.monotonic()
    try:
        project.run("up", "-d", "--no-build", *SERVICES, timeout=args.timeout,
                    log_file=args.work_dir / "logs" / "compose-up.log")
        states = project.wait_healthy(len(SERVICES), args.timeout)
        report.start_seconds = time.monotonic() - started
        report.containers = [f"{state.name} ({state.health or state.status})" for state in states]
        yield
    except DeployError:
        (args.work_dir / "logs" / "compose-logs.txt").write_text(project.logs(200))
        print(project.logs(40), file=sys.stderr)
        raise
    finally:
        project.down()


def compose_test(args: argparse.Namespace, report: Report) -> None:
    started = time.monotonic()
    report.installed_packages = ensure_packages(compose_found=compose_v1() is not None or args.compose == "v2")
    docker = docker_cli()
    with docker_engine(docker, args.work_dir / "logs" / "dockerd.log") as started_dockerd:
        report.started_dockerd = started_dockerd
        if args.fresh:
            remove_images(docker, args.base_image)
        busy = ports_in_use([*MESH_PORTS, args.postgres_port, args.redis_port])
        if busy:
            raise DeployError(f"ports of 127.0.0.1 already in use (the stack runs on the host network): {busy}")
        build_all(docker, args, report)
        env_file = args.work_dir / "compose.env"
        write_env_file(env_file, args, make_certificates(args.work_dir))
        project = ComposeProject(compose_command(args.compose, docker), docker, args.project, list(COMPOSE_FILES),
                                 env_file, ROOT)
        project.flatten(args.work_dir / "compose.merged.yml")
        with running_stack(project, args, report):
            run_checks(project, report)
    report.total_seconds = time.monotonic() - started


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the stack goes down and dockerd stops."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s compose-test %(message)s", datefmt="%H:%M:%S")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.work_dir = args.work_dir.resolve()
    (args.work_dir / "logs").mkdir(parents=True, exist_ok=True)
    stop_on_sigterm()
    report = Report()
    try:
        compose_test(args, report)
    except (DeployError, KeyboardInterrupt) as error:
        print("\n".join(report.lines()), file=sys.stderr)  # what was done before the failure
        log.error("FAILED: %s", error)
        return 1
    print("\n".join(report.lines()))
    (args.work_dir / "report.json").write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
