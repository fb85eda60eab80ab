"""PHI never crosses a wire in clear: `make run` (real processes, real models, the real Envoy) with its default
mutual TLS, checked from outside.

- tshark captures loopback traffic on every internal port (each service's gRPC and metrics ports) while a
  request carrying canary PHI goes through the mesh: the canary is in no captured payload of an internal
  port, TLS records were seen on each of them; the same capture finds the canary on Envoy's plain local
  port (the control that shows the search works).
- Plaintext clients and clients with a certificate of another CA are refused on every internal port; every
  identity may call exactly the services the table allows (the gateway's certificate is refused by the
  workers); Envoy's TLS listener serves HTTPS and gRPC over TLS (ALPN h2 and http/1.1), TLS 1.2+ only.
- Rotation: every certificate is replaced on disk under load; new connections use the new ones, no process
  restarts and no request fails.
One mesh for the module (about a minute to start); the rotation test runs last.
"""
from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import empty_pb2

from libs.config.tls import DEFAULT_ALLOWED_CALLERS
from libs.rpc.peers import NOT_ALLOWED
from libs.tls.identity import MESH_IDENTITIES
from medai.common.v1 import models_pb2
from medai.conversation.v1 import conversation_pb2
from medai.embedding.v1 import embedding_pb2
from medai.gateway.v1 import gateway_pb2_grpc
from medai.generation.v1 import generation_pb2
from tests.support.local_mesh import SERVICES, LocalMesh, running_mesh
from tests.support.mesh_tls import CertFolder, dev_folder, presented_certificate
from tests.support.ports import free_ports
from tests.support.processes import processes_with_marker

pytestmark = pytest.mark.slow

CANARY = f"Quintavius Vantongeren-{uuid.uuid4().hex[:10]}"
CANARY_NOTE = f"Patient {CANARY}, MRN 99417023, seen on 2024-03-02 for chest pain. Summarise."
GENERATION, EMBEDDING, CONVERSATION = "smollm2-135m-instruct", "all-minilm-l6-v2", "smollm2-135m-chat"
IDENTITIES = list(MESH_IDENTITIES)
# A cheap method of each service, its request, and what an admitted caller without an API key gets.
PROBE_METHODS: dict[str, tuple[str, bytes]] = {
    "gateway": ("/medai.gateway.v1.Gateway/GetHealth", empty_pb2.Empty().SerializeToString()),
    "compliance": ("/medai.common.v1.ModelCatalog/ListModels", models_pb2.ListModelsRequest().SerializeToString()),
    "generation": ("/medai.common.v1.ModelCatalog/ListModels", models_pb2.ListModelsRequest().SerializeToString()),
    "embedding": ("/medai.common.v1.ModelCatalog/ListModels", models_pb2.ListModelsRequest().SerializeToString()),
    "conversation": ("/medai.common.v1.ModelCatalog/ListModels",
                     models_pb2.ListModelsRequest().SerializeToString()),
    "monitor": ("/medai.monitor.v1.Monitor/GetMeshHealth", empty_pb2.Empty().SerializeToString()),
}
HEALTH_METHOD = "/grpc.health.v1.Health/Check"
RELOAD_SECONDS = "0.5"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Iterator[LocalMesh]:
    state = tmp_path_factory.mktemp("state")
    (edge_port,) = free_ports(1)
    env = {
        "TLS_RELOAD_SECONDS": RELOAD_SECONDS,
        # Envoy's TLS listener with the development edge certificate `make run` creates in the state dir.
        "ENVOY_TLS_CERT_FILE": str(state / "tls" / "edge.crt"),
        "ENVOY_TLS_KEY_FILE": str(state / "tls" / "edge.key"),
        "ENVOY_TLS_PORT": str(edge_port),
        "ENVOY_LOCAL_RATE_LIMIT_PER_SECOND": "100000",
    }
    try:
        with running_mesh(state, tmp_path_factory.mktemp("data"), env) as running:
            running.edge_tls_port = edge_port
            yield running
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def certs(mesh: LocalMesh) -> CertFolder:
    return CertFolder(mesh.state_dir / "tls")


@pytest.fixture(scope="module")
def impostor(tmp_path_factory) -> CertFolder:
    """Another CA, with certificates for the same identity names."""
    return dev_folder(tmp_path_factory.mktemp("impostor"))


def predict(mesh: LocalMesh, model: str, body: dict, client: httpx.Client | None = None) -> httpx.Response:
    send = client or httpx
    return send.post(f"{mesh.ports.base_url}/models/{model}/predict", json=body, headers=mesh.auth(), timeout=120)


def internal_ports(mesh: LocalMesh) -> dict[int, str]:
    """Every port a service of the mesh listens on (gRPC and metrics) -> a label."""
    ports = {mesh.ports.grpc[service]: f"{service} gRPC" for service in SERVICES}
    ports.update({mesh.ports.metrics[service]: f"{service} metrics" for service in SERVICES})
    return ports


# --- make run --------------------------------------------------------------------------------------


def test_make_run_creates_the_development_ca_and_certificates(mesh: LocalMesh, certs: CertFolder) -> None:
    assert any(line.startswith("created a development CA and mesh certificates for mutual TLS in")
               for line in mesh.lines)
    assert any("mesh mTLS           on" in line for line in mesh.lines)
    keys = sorted(certs.path.glob("*.key"))
    assert {key.stem for key in keys} >= {*MESH_IDENTITIES, "ca"}
    assert all(key.stat().st_mode & 0o077 == 0 for key in keys)


def test_the_mesh_works_end_to_end_over_mtls_with_real_models(mesh: LocalMesh) -> None:
    generated = predict(mesh, GENERATION, {"inputs": "Name one symptom of anemia.",
                                           "parameters": {"max_new_tokens": 8, "temperature": 0}})
    assert generated.status_code == 200, generated.text
    assert generated.json()["metadata"]["tokens_generated"] > 0
    embedded = predict(mesh, EMBEDDING, {"inputs": ["chest pain"]})
    assert embedded.status_code == 200 and len(embedded.json()["outputs"][0]) == 384
    chat = predict(mesh, CONVERSATION, {"inputs": "I have a cough.", "session_id": "",
                                        "parameters": {"max_new_tokens": 8}})
    assert chat.status_code == 200, chat.text
    # The monitor scraped every service's metrics endpoint over HTTPS with its certificate.
    metrics = httpx.get(f"{mesh.ports.base_url}/metrics", timeout=30).text
    for service in SERVICES:
        assert (f'medai_certificate_expiry_seconds{{certificate="identity",identity="{service}",'
                f'service="{service}"}}') in metrics


# --- tshark: no canary in clear on any internal port -------------------------------------------------


class Capture:
    """tshark on the loopback interface for some ports; stopped by its pid."""

    def __init__(self, ports: list[int], path: Path) -> None:
        self.path = path
        capture_filter = " or ".join(f"tcp port {port}" for port in ports)
        self.process = subprocess.Popen(["tshark", "-q", "-i", "lo", "-f", capture_filter, "-w", str(path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._started = threading.Event()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.output.append(line)
            if "Capture started" in line:
                self._started.set()
        self._started.set()

    def wait_started(self, timeout: float = 30) -> None:
        self._started.wait(timeout)
        if self.process.poll() is not None or not any("Capture started" in line for line in self.output):
            self.stop()
            pytest.skip(f"tshark cannot capture on lo here: {''.join(self.output)[-300:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _fields(pcap: Path, fields: list[str], display_filter: str = "", decode_as: list[int] = ()) -> list[list[str]]:
    argv = ["tshark", "-r", str(pcap), "-T", "fields", *(f"-e{field}" for field in fields)]
    for port in decode_as:
        argv += ["-d", f"tcp.port=={port},tls"]
    if display_filter:
        argv += ["-Y", display_filter]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def _streams(pcap: Path) -> dict[tuple[str, int, int], bytes]:
    """The TCP payload bytes of every (stream, source port, destination port), in capture order."""
    data: dict[tuple[str, int, int], bytearray] = collections.defaultdict(bytearray)
    for stream, source, destination, payload in _fields(pcap, ["tcp.stream", "tcp.srcport", "tcp.dstport",
                                                               "tcp.payload"], "tcp.len > 0"):
        data[(stream, int(source), int(destination))] += bytes.fromhex(payload.replace(":", ""))
    return {key: bytes(value) for key, value in data.items()}


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (apt-get install tshark)")
def test_no_canary_phi_crosses_an_internal_port_in_clear(mesh: LocalMesh, tmp_path: Path) -> None:
    internal = internal_ports(mesh)
    edge = mesh.ports.envoy
    capture = Capture([*internal, edge], tmp_path / "mesh.pcap")
    try:
        capture.wait_started()
        answers = [
            predict(mesh, GENERATION, {"inputs": CANARY_NOTE, "parameters": {"max_new_tokens": 8, "temperature": 0}}),
            predict(mesh, EMBEDDING, {"inputs": [CANARY_NOTE]}),
            predict(mesh, CONVERSATION, {"inputs": CANARY_NOTE, "session_id": "", "parameters": {"max_new_tokens": 8}}),
            httpx.post(f"{mesh.ports.base_url}/v1/deidentify", json={"text": CANARY_NOTE}, headers=mesh.auth(),
                       timeout=60),
            httpx.get(f"{mesh.ports.base_url}/metrics", timeout=30),  # the monitor scrapes every metrics port
            httpx.get(f"{mesh.ports.base_url}/health", timeout=30),
        ]
        assert [answer.status_code for answer in answers] == [200] * len(answers), [a.text for a in answers]
    finally:
        capture.stop()

    canary = CANARY.encode()
    streams = _streams(capture.path)
    carrying = {source if source in internal or source == edge else destination
                for (_, source, destination), payload in streams.items() if canary in payload}
    assert edge in carrying, "the control failed: the canary was not found on Envoy's plain port"
    assert carrying == {edge}, f"canary PHI in clear on {[internal.get(port) for port in carrying - {edge}]}"

    records = collections.Counter(
        int(port) for row in _fields(capture.path, ["tcp.srcport", "tcp.dstport"], "tls.record.content_type",
                                     list(internal)) for port in row if int(port) in internal)
    with_tls = set(records)
    assert with_tls == set(internal), f"no TLS records seen on {[internal[p] for p in set(internal) - with_tls]}"
    plain_edge = _fields(capture.path, ["tcp.srcport"], f"tcp.port == {edge} && tls.record.content_type", [edge])
    assert plain_edge == [], "the control failed: TLS records reported on Envoy's plaintext port"
    print(f"\ncaptured {len(streams)} TCP flows on {len(internal)} internal ports and Envoy's; packets with TLS "
          f"records per port: {', '.join(f'{internal[port]} {count}' for port, count in sorted(records.items()))}; "
          f"the canary only on Envoy's plain port ({sum(canary in p for p in streams.values())} flows)")


# --- refused callers -----------------------------------------------------------------------------


def _status(channel: grpc.Channel, method: str, request: bytes) -> grpc.StatusCode:
    call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        call(request, timeout=10)
    except grpc.RpcError as error:
        assert error.details() == NOT_ALLOWED or error.code() != grpc.StatusCode.PERMISSION_DENIED
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("service", SERVICES)
def test_plaintext_and_foreign_ca_clients_are_refused_on_every_internal_port(
        mesh: LocalMesh, certs: CertFolder, impostor: CertFolder, service: str) -> None:
    address = mesh.ports.address(service)
    with grpc.insecure_channel(address) as plain:
        assert _status(plain, HEALTH_METHOD, b"") == grpc.StatusCode.UNAVAILABLE
    allowed = DEFAULT_ALLOWED_CALLERS[service][0]
    with impostor.channel(address, allowed, service) as foreign:
        assert _status(foreign, *PROBE_METHODS[service]) == grpc.StatusCode.UNAVAILABLE
    metrics = f"https://127.0.0.1:{mesh.ports.metrics[service]}/metrics"
    with pytest.raises(httpx.HTTPError):
        httpx.get(metrics.replace("https://", "http://"), timeout=5)
    with pytest.raises(httpx.HTTPError), impostor.http_client("monitor") as client:
        client.get(metrics, extensions={"sni_hostname": service}, timeout=5)
    with certs.http_client(None) as client, pytest.raises(httpx.HTTPError):
        client.get(metrics, extensions={"sni_hostname": service}, timeout=5)


def test_each_identity_may_call_exactly_the_services_the_table_allows(mesh: LocalMesh, certs: CertFolder) -> None:
    seen: dict[str, dict[str, str]] = {}
    for service in SERVICES:
        for identity in IDENTITIES:
            with certs.channel(mesh.ports.address(service), identity, service) as channel:
                app = _status(channel, *PROBE_METHODS[service])
                health = _status(channel, HEALTH_METHOD, b"")
            seen[f"{identity}->{service}"] = {"app": app.name, "health": health.name}
    expected = {
        f"{identity}->{service}": {
            "app": "OK" if identity in DEFAULT_ALLOWED_CALLERS[service] else "PERMISSION_DENIED",
            "health": "OK" if identity in ("monitor", service) else "PERMISSION_DENIED",
        }
        for service in SERVICES for identity in IDENTITIES
    }
    assert seen == expected


def test_metrics_admit_the_monitor_and_prometheus_only(mesh: LocalMesh, certs: CertFolder) -> None:
    for service in SERVICES:
        url = f"https://127.0.0.1:{mesh.ports.metrics[service]}/metrics"
        for identity in IDENTITIES:
            with certs.http_client(identity) as client:
                status = client.get(url, extensions={"sni_hostname": service}, timeout=5).status_code
            assert status == (200 if identity in ("monitor", "prometheus") else 403), (identity, service)


def _worker_calls() -> dict[str, tuple[str, bytes]]:
    """Each worker's main method with a request carrying canary PHI."""
    return {
        "generation": ("/medai.generation.v1.Generation/Generate",
                       generation_pb2.GenerateRequest(model_id=GENERATION, prompt=CANARY_NOTE).SerializeToString()),
        "embedding": ("/medai.embedding.v1.Embedding/Embed",
                      embedding_pb2.EmbedRequest(model_id=EMBEDDING, inputs=[CANARY_NOTE]).SerializeToString()),
        "conversation": ("/medai.conversation.v1.Conversation/Chat", conversation_pb2.ChatRequest(
            model_id=CONVERSATION, message=CANARY_NOTE).SerializeToString()),
    }


@pytest.mark.parametrize("worker", ["generation", "embedding", "conversation"])
def test_the_gateways_certificate_is_refused_by_every_worker(mesh: LocalMesh, certs: CertFolder, worker: str) -> None:
    method, request = _worker_calls()[worker]
    call = lambda channel: channel.unary_unary(method, request_serializer=lambda b: b,  # noqa: E731
                                               response_deserializer=lambda b: b)(request, timeout=60)
    with certs.channel(mesh.ports.address(worker), "gateway", worker) as channel, \
            pytest.raises(grpc.RpcError) as refused:
        call(channel)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == NOT_ALLOWED
    if worker != "conversation":  # (a chat needs an owner: compliance's own call would be refused otherwise)
        with certs.channel(mesh.ports.address(worker), "compliance", worker) as channel:
            assert call(channel)  # the same call with compliance's certificate is served


def test_refusals_leave_a_log_line_without_phi(mesh: LocalMesh) -> None:
    refusals = [line for line in mesh.lines if "refused a call to" in line]
    assert any('"service": "generation"' in line and "from gateway" in line for line in refusals)
    assert all(CANARY not in line for line in mesh.lines)


# --- Envoy's TLS listener --------------------------------------------------------------------------


def test_envoy_serves_https_and_grpc_over_tls(mesh: LocalMesh, certs: CertFolder) -> None:
    port = mesh.edge_tls_port
    for alpn in ("h2", "http/1.1"):
        certificate, chosen = presented_certificate(port, "localhost", certs, None, (alpn,))
        assert chosen == alpn and certificate.serial_number == certs.serial("edge")
    with httpx.Client(verify=certs.ssl_context(None)) as client:
        health = client.get(f"https://localhost:{port}/health", timeout=30)
        assert health.status_code == 200 and health.json()["status"] == "SERVING"
        assert client.get(f"https://localhost:{port}/models", headers=mesh.auth(), timeout=30).status_code == 200
    credentials = grpc.ssl_channel_credentials((certs.path / "ca.crt").read_bytes())
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        models = gateway_pb2_grpc.GatewayStub(channel).ListModels(
            models_pb2.ListModelsRequest(), metadata=tuple(mesh.auth().items()), timeout=30)
    assert {model.model_id for model in models.models} >= {GENERATION, EMBEDDING}


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_envoy_refuses_tls_below_1_2(mesh: LocalMesh, certs: CertFolder, version: ssl.TLSVersion) -> None:
    context = certs.ssl_context(None)
    context.minimum_version = context.maximum_version = version
    with pytest.raises((ssl.SSLError, OSError)), urllib.request.urlopen(
            f"https://localhost:{mesh.edge_tls_port}/health", context=context, timeout=10):
        pass


def test_envoy_refuses_ciphers_without_forward_secrecy(mesh: LocalMesh, certs: CertFolder) -> None:
    context = certs.ssl_context(None)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-GCM-SHA256:AES256-SHA")
    with pytest.raises((ssl.SSLError, OSError)), urllib.request.urlopen(
            f"https://localhost:{mesh.edge_tls_port}/health", context=context, timeout=10):
        pass


# --- rotation (last: it replaces every certificate) ---------------------------------------------------


def _serials_presented(mesh: LocalMesh, certs: CertFolder) -> dict[str, int]:
    found = {}
    for service in SERVICES:
        grpc_port, metrics_port = mesh.ports.grpc[service], mesh.ports.metrics[service]
        found[f"{service} gRPC"] = presented_certificate(grpc_port, service, certs, "monitor")[0].serial_number
        found[f"{service} metrics"] = presented_certificate(metrics_port, service, certs, "monitor",
                                                            ())[0].serial_number
    found["envoy edge"] = presented_certificate(mesh.edge_tls_port, "localhost", certs, None)[0].serial_number
    return found


def _envoy_serials(mesh: LocalMesh) -> set[int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{mesh.ports.admin}/certs", timeout=5) as answer:
        listed = json.load(answer)["certificates"]
    return {int(cert["serial_number"], 16) for entry in listed for cert in entry["cert_chain"]}


def _expiry_days(mesh: LocalMesh) -> dict[str, float]:
    text = httpx.get(f"{mesh.ports.base_url}/metrics", timeout=30).text
    days = {}
    for line in text.splitlines():
        if line.startswith('medai_certificate_expiry_seconds{certificate="identity"'):
            service = line.split('service="')[1].split('"')[0]
            days[service] = float(line.rsplit(" ", 1)[1]) / 86400
    return days


class Load:
    """Closed-loop requests through Envoy (embeddings, de-identification, generation) until stopped."""

    def __init__(self, mesh: LocalMesh, clients: int = 3) -> None:
        self.mesh, self.stop, self.results = mesh, threading.Event(), collections.Counter()
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)]
        for thread in self.threads:
            thread.start()

    def _run(self, client_number: int) -> None:
        count = 0
        with httpx.Client(timeout=120) as client:
            while not self.stop.is_set():
                count += 1
                kind = ("embed", "deidentify", "generate")[(count + client_number) % 3]
                text = f"Rotation check {client_number}-{count}: patient reports mild headache."
                try:
                    if kind == "deidentify":
                        answer = client.post(f"{self.mesh.ports.base_url}/v1/deidentify", json={"text": text},
                                             headers=self.mesh.auth())
                    elif kind == "embed":
                        answer = predict(self.mesh, EMBEDDING, {"inputs": [text]}, client)
                    else:
                        answer = predict(self.mesh, GENERATION, {"inputs": text, "parameters": {
                            "max_new_tokens": 2, "temperature": 0}}, client)
                    ok = answer.status_code == 200
                except httpx.HTTPError as error:
                    ok, answer = False, error
                self.results[(kind, ok)] += 1
                if not ok:
                    self.failures.append(f"{kind}: {getattr(answer, 'status_code', answer)}")

    def succeeded(self) -> int:
        return sum(count for (_, ok), count in self.results.items() if ok)

    def wait_for(self, succeeded: int, timeout: float = 120) -> None:
        """Until this many requests succeeded in all (fails on the first failure or at the timeout)."""
        deadline = time.monotonic() + timeout
        while self.succeeded() < succeeded:
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, f"only {self.succeeded()} requests in {timeout:.0f} s"
            time.sleep(0.1)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(180)


def test_rotation_replaces_every_certificate_without_a_restart_or_a_failed_request(
        mesh: LocalMesh, certs: CertFolder) -> None:
    before = _serials_presented(mesh, certs)
    pids = sorted(processes_with_marker(mesh.marker))
    load = Load(mesh)
    try:
        load.wait_for(6)  # requests on the old certificates first
        env = {**os.environ, "APP_STATE_DIR": str(mesh.state_dir)}
        renewed = subprocess.run([sys.executable, "-m", "libs.cli", "certs", "dev", "--renew", "--days", "30"],
                                 env=env, capture_output=True, text=True, timeout=60, check=True)
        assert "issued: envoy, gateway, compliance" in renewed.stdout
        expected = {f"{service} {kind}": certs.serial(service) for service in SERVICES for kind in ("gRPC", "metrics")}
        expected["envoy edge"] = certs.serial("edge")
        deadline = time.monotonic() + 60
        while (now := _serials_presented(mesh, certs)) != expected:
            assert time.monotonic() < deadline, f"still presented the old certificate: {now} vs {expected}"
            time.sleep(0.2)
        assert not set(now.values()) & set(before.values())
        while not {certs.serial("envoy"), certs.serial("edge")} <= _envoy_serials(mesh):
            assert time.monotonic() < deadline, "Envoy did not load its new certificates"
            time.sleep(0.2)
        # Every process (servers, clients, metrics share one source) holds its 30-day certificate now.
        expiry = _expiry_days(mesh)
        while not all(days < 31 for days in expiry.values()):
            assert time.monotonic() < deadline, f"not every process reloaded: {expiry}"
            time.sleep(0.5)
            expiry = _expiry_days(mesh)
        assert set(expiry) == set(SERVICES)
        load.wait_for(load.succeeded() + 6)  # and requests on the new ones
    finally:
        load.finish()
    assert load.failures == []
    assert {kind for kind, ok in load.results if ok} == {"embed", "deidentify", "generate"}
    assert sorted(processes_with_marker(mesh.marker)) == pids, "a process was restarted"
    metrics = httpx.get(f"{mesh.ports.base_url}/metrics", timeout=30).text
    restarts = [line for line in metrics.splitlines()
                if line.startswith("medai_service_restarts_total{") and not line.endswith(" 0.0")]
    assert restarts == []
