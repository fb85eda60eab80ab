"""libs/deploy without a Docker engine: the requirements helper, the mirror and wheel look-ups, the dockerd
lifecycle (with stand-in executables), container states, the compose-test checks against canned answers,
and Envoy's preStop hook against a real Envoy."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from libs.config import EnvoySettings
from libs.deploy import compose_test, engine, smoke
from libs.deploy import edge as edge_entrypoint
from libs.deploy.base_image import host_mirror
from libs.deploy.commands import DeployError
from libs.deploy.compose import ContainerState
from libs.deploy.images import BuiltImage, local_torch_wheel
from libs.deploy.requirements import requirements
from libs.envoy.config import READY_PATH
from tests.support.edge import running_edge
from tests.support.http_endpoints import http_endpoint
from tests.support.mesh_tls import dev_folder
from tests.support.ports import free_ports
from tests.unit.deploy.artifacts import ROOT

# --- requirements.py -----------------------------------------------------------------------------

PROJECT = {
    "name": "medai-mesh",
    "dependencies": ["grpcio>=1.66"],
    "optional-dependencies": {
        "generation": ["torch>=2.4", "transformers>=4.46"],
        "conversation": ["medai-mesh[generation]", "redis>=5.0"],
        "everything": ["medai-mesh[conversation,generation]", "grpcio>=1.66"],
    },
}


def test_requirements_resolve_self_references_once() -> None:
    assert requirements(PROJECT, []) == ["grpcio>=1.66"]
    assert sorted(requirements(PROJECT, ["conversation"])) == ["grpcio>=1.66", "redis>=5.0", "torch>=2.4",
                                                              "transformers>=4.46"]
    found = requirements(PROJECT, ["everything"])
    assert len(found) == len(set(found)) == 4


def test_requirements_refuse_an_unknown_extra() -> None:
    with pytest.raises(SystemExit, match="no extra 'nope'"):
        requirements(PROJECT, ["nope"])


def test_requirements_script_reads_the_projects_pyproject() -> None:
    """As the image build runs it: a plain script, the standard library only."""
    result = subprocess.run([sys.executable, "-I", str(ROOT / "libs/deploy/requirements.py"), "gateway"],
                            capture_output=True, text=True, timeout=30, check=True)
    lines = result.stdout.split()
    assert any(line.startswith("grpcio") for line in lines) and any(line.startswith("redis") for line in lines)
    assert not any(line.startswith("torch") for line in lines), "the gateway image carries no torch"


# --- base image, wheels ----------------------------------------------------------------------------

def test_the_host_mirror_comes_from_apt_sources(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "debian.sources").write_text("Types: deb\n# a comment\nURIs: http://mirror.example/debian\n"
                                            "Suites: bookworm\nComponents: main\n")
    assert host_mirror((sources,)) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("deb [arch=amd64] http://other.example/debian/ bookworm main\n")
    assert host_mirror((tmp_path / "missing", one_line)) == "http://other.example/debian"
    assert host_mirror((tmp_path / "missing",)) == "http://deb.debian.org/debian"


def test_the_local_torch_wheel_is_the_cpu_build_for_this_python(tmp_path: Path) -> None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for name in (f"torch-2.13.0-{tag}-{tag}-manylinux_2_28_x86_64.whl",  # a CUDA build
                 f"torch-2.12.0+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl",
                 "torch-2.13.0+cpu-cp39-cp39-manylinux_2_28_x86_64.whl"):
        (tmp_path / name).touch()
    assert local_torch_wheel("2.13.0", [tmp_path]) is None
    wanted = tmp_path / f"torch-2.13.0+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl"
    wanted.touch()
    assert local_torch_wheel("2.13.0", [tmp_path / "missing", tmp_path]) == wanted


# --- dockerd lifecycle, with stand-ins for dockerd and the docker CLI --------------------------------

def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A `dockerd` that serves (a marker file) until SIGTERM, and a `docker` that answers while it does."""
    marker = tmp_path / "engine-up"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "dockerd", f"#!/bin/sh\ntrap 'rm -f {marker}; exit 0' TERM\ntouch {marker}\n"
                                    "while true; do sleep 0.05; done\n")
    docker = executable(bin_dir / "docker", f"#!/bin/sh\n[ -f {marker} ] && echo 20.10.24\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return str(docker), marker


def test_a_running_engine_is_used_and_left_alone(fake_docker: tuple[str, Path], tmp_path: Path) -> None:
    docker, marker = fake_docker
    marker.touch()
    with engine.docker_engine(docker, tmp_path / "dockerd.log") as started:
        assert started is False
    assert marker.exists()


def test_dockerd_is_started_without_a_bridge_and_stopped_afterwards(fake_docker: tuple[str, Path],
                                                                    tmp_path: Path) -> None:
    docker, marker = fake_docker
    assert not engine.engine_answers(docker)
    with pytest.raises(RuntimeError, match="inside"), engine.docker_engine(docker, tmp_path / "dockerd.log") as started:
        assert started is True and engine.engine_answers(docker)
        raise RuntimeError("inside")  # a failure inside the block still stops it
    assert not marker.exists() and not engine.engine_answers(docker)
    assert engine.DOCKERD_FLAGS == ("--bridge=none", "--iptables=false")


def test_a_dockerd_that_dies_while_starting_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "dockerd", "#!/bin/sh\nexit 3\n")
    docker = executable(bin_dir / "docker", "#!/bin/sh\nexit 1\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DeployError, match="exited with 3"), engine.docker_engine(str(docker), tmp_path / "d.log"):
        pass


# --- compose-test pieces -------------------------------------------------------------------------------

def test_container_states() -> None:
    assert ContainerState("a", "running", "healthy", 0).ready
    assert ContainerState("redis", "running", "", 0).ready  # no healthcheck: running is enough
    assert not ContainerState("a", "running", "starting", 0).ready
    assert ContainerState("a", "exited", "", 0).failed
    assert ContainerState("a", "running", "unhealthy", 0).failed
    assert ContainerState("a", "running", "healthy", 1).failed, "a restart is a crash"


def test_busy_ports_are_found() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        (free,) = free_ports(1)
        assert compose_test.ports_in_use([busy, free]) == [busy]


def test_the_env_file_holds_fresh_secrets_for_its_owner_only(tmp_path: Path) -> None:
    args = compose_test.parse_args(["--postgres-port", "25432"])
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    compose_test.write_env_file(first, args, tmp_path / "tls")
    compose_test.write_env_file(second, args, tmp_path / "tls")
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in first.read_text().splitlines())
    assert values["MEDAI_HOSTNET_POSTGRES_PORT"] == "25432" and len(values["APP_SECRET_KEY"]) == 64
    assert values["MEDAI_TLS_DIR"] == str(tmp_path / "tls")
    assert values["APP_SECRET_KEY"] not in second.read_text()


def test_compose_test_makes_one_certificate_folder_per_identity(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving the folders to the images' user needs root")
    folders = compose_test.make_certificates(tmp_path)
    for identity in ("envoy", "gateway", "compliance", "generation", "embedding", "conversation", "monitor",
                     "prometheus", "edge"):
        folder = folders / identity
        assert sorted(path.name for path in folder.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
        assert folder.stat().st_uid == compose_test.CONTAINER_UID and stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "tls.key").stat().st_mode) == 0o600


def test_the_report_names_sizes_times_and_checks() -> None:
    report = compose_test.Report(started_dockerd=True, base_image_seconds=50.0, build_seconds=300.0,
                                 start_seconds=54.0, total_seconds=420.0,
                                 images=[BuiltImage("gateway", "medai-mesh/gateway:0.1.0", 14.8, 241_000_000)],
                                 checks=[smoke.Check("health", 0.1, "SERVING")])
    text = "\n".join(report.lines())
    assert "dockerd started for this run" in text and "base image (debootstrap + import): 50 s" in text
    assert "gateway" in text and "241 MB" in text and "14.8 s" in text and "ok health" in text


class Canned(BaseHTTPRequestHandler):
    """Answers every path with the JSON the test put in `answers` (status 200)."""

    answers: dict[str, object] = {}

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(self.answers.get(self.path.split("?")[0], {})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def edge() -> tuple[str, dict[str, object]]:
    answers: dict[str, object] = {}
    handler = type("Answers", (Canned,), {"answers": answers})
    with http_endpoint(handler) as url:
        yield url.removesuffix("/metrics"), answers


def test_the_checks_pass_on_good_answers(edge: tuple[str, dict[str, object]]) -> None:
    url, answers = edge
    answers.update({
        "/health": {"status": "SERVING", "services": {"gateway": "SERVING"}},
        f"/models/{smoke.GENERATION_MODEL}/predict": {"outputs": "Fatigue.", "metadata": {"tokens_generated": 3}},
        f"/models/{smoke.EMBEDDING_MODEL}/predict": {"outputs": [[0.1] * 384, [0.2] * 384]},
        "/v1/deidentify": {"redacted_text": "Patient [PERSON_1]", "entities": [{"entity_type": "PERSON"}]},
        "/v1/audit:verify": {"intact": True, "recordsChecked": "4"},
    })
    assert smoke.check_health(url).startswith("SERVING")
    assert smoke.check_generation(url, "key").startswith("3 tokens")
    assert smoke.check_embedding(url, "key") == "2 vectors of 384 dimensions"
    assert "1 entities" in smoke.check_deidentification(url, "key")
    assert smoke.check_audit(url, "key") == "chain intact, 4 records"


@pytest.mark.parametrize("path, answer, check", [
    ("/v1/deidentify", {"redacted_text": "Patient Jane Roe", "entities": []}, smoke.check_deidentification),
    ("/v1/audit:verify", {"intact": False, "recordsChecked": "4"}, smoke.check_audit),
    (f"/models/{smoke.EMBEDDING_MODEL}/predict", {"outputs": [[0.1] * 12]}, smoke.check_embedding),
    (f"/models/{smoke.GENERATION_MODEL}/predict", {"outputs": "", "metadata": {}}, smoke.check_generation),
])
def test_the_checks_fail_on_wrong_answers(edge: tuple[str, dict[str, object]], path: str, answer: object,
                                          check) -> None:
    url, answers = edge
    answers[path] = answer
    with pytest.raises(DeployError):
        check(url, "key")


def test_prometheus_check_waits_for_every_job(edge: tuple[str, dict[str, object]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url, answers = edge
    answers["/api/v1/rules"] = {"data": {"groups": [{"rules": [{"name": "MedaiServiceDown"}]}]}}
    answers["/api/v1/targets"] = {"data": {"activeTargets": [{"labels": {"job": "gateway"}, "health": "up"}]}}
    assert "MedaiServiceDown" in smoke.check_prometheus(url, {"gateway"})
    answers["/api/v1/targets"]["data"]["activeTargets"].append({"labels": {"job": "envoy"}, "health": "down"})
    monkeypatch.setattr(smoke.time, "sleep", lambda seconds: None)
    monotonic = iter(range(0, 10_000, 50))
    monkeypatch.setattr(smoke.time, "monotonic", lambda: next(monotonic))
    with pytest.raises(DeployError, match="Prometheus targets not up within 90 s: envoy : down"):
        smoke.check_prometheus(url, {"gateway", "envoy"})


# --- Envoy's preStop hook, against a real Envoy ------------------------------------------------------

def run_module(module: str, *arguments: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-m", module, *arguments], env=full_env, cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)


def test_prestop_hook_takes_envoy_out_of_readiness(tmp_path: Path) -> None:
    port, admin_port, gateway_port = free_ports(3)
    settings = EnvoySettings(port=port, admin_port=admin_port, gateway_address=f"127.0.0.1:{gateway_port}",
                             access_log_path=str(tmp_path / "access.log"))
    env = {"ENVOY_ADMIN_PORT": str(admin_port)}
    with running_edge(settings, tmp_path):
        assert run_module("libs.deploy.healthcheck", "envoy", env=env, cwd=tmp_path).returncode == 0
        assert http_status(f"http://127.0.0.1:{port}{READY_PATH}")[0] == 200
        drained = run_module("libs.deploy.edge_drain", "--wait", "0", env=env, cwd=tmp_path)
        assert drained.returncode == 0 and "failing" in drained.stdout
        # Envoy is DRAINING: /ready answers 503 on the admin (the image's probe) and on the edge port
        # (the pod's readiness probe), so the pod leaves the endpoints.
        assert run_module("libs.deploy.healthcheck", "envoy", env=env, cwd=tmp_path).returncode == 1
        assert http_status(f"http://127.0.0.1:{port}{READY_PATH}")[0] == 503
    unreachable = run_module("libs.deploy.edge_drain", "--wait", "0", env=env, cwd=tmp_path)
    assert unreachable.returncode == 0 and "not reachable" in unreachable.stdout


def http_status(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_the_stats_listener_serves_envoys_metrics_and_nothing_else(tmp_path: Path) -> None:
    port, admin_port, stats_port, gateway_port = free_ports(4)
    settings = EnvoySettings(port=port, admin_port=admin_port, gateway_address=f"127.0.0.1:{gateway_port}",
                             host="127.0.0.1", access_log_path=str(tmp_path / "access.log"))
    def with_stats(config: dict) -> None:
        edge_entrypoint.add_stats_listener(config, settings, stats_port)

    with running_edge(settings, tmp_path, adjust=with_stats):
        status, body = http_status(f"http://127.0.0.1:{stats_port}/stats/prometheus")
        assert status == 200 and "envoy_server_live" in body
        for method, path in (("POST", "/healthcheck/fail"), ("POST", "/quitquitquit"), ("GET", "/config_dump"),
                             ("POST", "/stats/prometheus"), ("GET", "/ready")):
            assert http_status(f"http://127.0.0.1:{stats_port}{path}", method)[0] == 404, f"{method} {path}"
        assert http_status(f"http://127.0.0.1:{admin_port}/ready")[0] == 200, "the admin was not reached"


def test_with_mesh_tls_the_stats_listener_admits_prometheus_and_the_monitor_only(tmp_path: Path) -> None:
    folder = dev_folder(tmp_path / "tls")
    port, admin_port, stats_port, gateway_port = free_ports(4)
    settings = EnvoySettings(port=port, admin_port=admin_port, gateway_address=f"127.0.0.1:{gateway_port}",
                             host="127.0.0.1", access_log_path=str(tmp_path / "access.log"),
                             config_path=tmp_path / "envoy.json", tls=folder.settings())

    def with_stats(config: dict) -> None:
        edge_entrypoint.add_stats_listener(config, settings, stats_port)

    url = f"https://127.0.0.1:{stats_port}/stats/prometheus"
    with running_edge(settings, tmp_path, adjust=with_stats):
        for identity in ("prometheus", "monitor"):
            with folder.http_client(identity) as client:
                answer = client.get(url, extensions={"sni_hostname": "envoy"}, timeout=5)
            assert answer.status_code == 200 and "envoy_server_live" in answer.text
        for identity in ("gateway", None):
            with folder.http_client(identity) as client, pytest.raises(httpx.HTTPError):
                client.get(url, extensions={"sni_hostname": "envoy"}, timeout=5)
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://"), timeout=5)
