"""Mutual TLS of the mesh's gRPC servers and clients (libs.rpc), with real certificates and real handshakes
over loopback: who may call whom, refused strangers, server names, and rotation without restart."""
from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.config import EmbeddingSettings, GatewaySettings
from libs.rpc.channels import open_channel
from libs.rpc.health import HealthReporter
from libs.rpc.peers import NO_IDENTITY, NOT_ALLOWED
from libs.rpc.server import new_server
from libs.tls import mesh_tls
from libs.tls.issue import _key_pem, _load_authority, _new_key, ensure_dev_certificates, write_file
from tests.support.mesh_tls import CertFolder, dev_folder, presented_certificate

SERVICE = "medai.test.Peer"
METHOD = f"/{SERVICE}/Serial"
RELOAD_SECONDS = 0.05


async def _serial(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    """The serial number of the certificate the caller presented."""
    pem = context.auth_context()["x509_pem_cert"][0]
    return str(x509.load_pem_x509_certificate(pem).serial_number).encode()


def _register(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(_serial, request_deserializer=lambda b: b,
                                                  response_serializer=lambda b: b)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Serial": handler}),))


class Running:
    def __init__(self, server: grpc.aio.Server, port: int, health: HealthReporter) -> None:
        self.server, self.port, self.health = server, port, health

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def folder(tmp_path: Path) -> CertFolder:
    return dev_folder(tmp_path / "tls")


@pytest.fixture
async def embedding_server(folder: CertFolder):
    """An `embedding` server of the mesh (new_server): admits compliance; health: the monitor and itself."""
    settings = EmbeddingSettings(port=0, metrics_port=0, tls=folder.settings(reload_seconds=RELOAD_SECONDS))
    health = HealthReporter([SERVICE])
    server, port = new_server(settings, health, [SERVICE], _register)
    await server.start()
    await health.set_serving(True)
    try:
        yield Running(server, port, health)
    finally:
        await server.stop(None)


async def call_serial(channel: grpc.aio.Channel) -> int:
    answer = await channel.unary_unary(METHOD, request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)(b"", timeout=5)
    return int(answer)


async def health_check(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return reply.status


async def test_the_allowed_caller_is_served_and_its_certificate_seen(embedding_server, folder) -> None:
    async with folder.aio_channel(embedding_server.address, "compliance", "embedding") as channel:
        assert await call_serial(channel) == folder.serial("compliance")
    async with folder.aio_channel(embedding_server.address, "compliance", "worker") as channel:
        assert await call_serial(channel) == folder.serial("compliance")  # compliance verifies the worker role


@pytest.mark.parametrize("caller", ["gateway", "envoy", "monitor", "generation", "prometheus"])
async def test_other_mesh_identities_get_permission_denied_and_a_log_line(embedding_server, folder, caller,
                                                                          caplog) -> None:
    caplog.set_level(logging.WARNING, "libs.rpc.peers")
    async with folder.aio_channel(embedding_server.address, caller, "embedding") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call_serial(channel)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == NOT_ALLOWED
    assert [record.getMessage() for record in caplog.records] == [
        f"refused a call to {METHOD} from {caller} (admitted: compliance)"]


async def test_health_admits_the_monitor_and_the_service_itself_only(embedding_server, folder) -> None:
    for caller in ("monitor", "embedding"):
        async with folder.aio_channel(embedding_server.address, caller, "embedding") as channel:
            assert await health_check(channel) == health_pb2.HealthCheckResponse.SERVING
    async with folder.aio_channel(embedding_server.address, "gateway", "embedding") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_check(channel)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as refused_watch:
            await watch.read()
        assert refused_watch.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_plaintext_and_foreign_ca_clients_never_get_a_handshake(embedding_server, folder, tmp_path) -> None:
    async with grpc.aio.insecure_channel(embedding_server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as plaintext:
            await health_check(channel)
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    impostor = dev_folder(tmp_path / "other-ca")  # a CA of its own, with the same identity names
    async with impostor.aio_channel(embedding_server.address, "compliance", "embedding") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as foreign:
            await call_serial(channel)
    assert foreign.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_refuses_a_server_without_the_name_it_expects(embedding_server, folder) -> None:
    async with folder.aio_channel(embedding_server.address, "compliance", "generation") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call_serial(channel)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def _certificate_without_identity(folder: CertFolder, name: str) -> None:
    """A certificate of the mesh CA that names no SPIFFE ID (only a DNS name)."""
    authority = _load_authority(folder.path)
    key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(authority.certificate.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("compliance")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(authority.key, hashes.SHA256()))
    write_file(folder.path / f"{name}.key", _key_pem(key), 0o600)
    write_file(folder.path / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)


async def test_a_mesh_certificate_without_an_identity_is_unauthenticated(embedding_server, folder) -> None:
    _certificate_without_identity(folder, "anonymous")
    async with folder.aio_channel(embedding_server.address, "anonymous", "embedding") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call_serial(channel)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == NO_IDENTITY


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(RELOAD_SECONDS)


async def test_a_server_certificate_replaced_on_disk_is_used_by_new_connections(embedding_server, folder) -> None:
    old = folder.serial("embedding")
    async with folder.aio_channel(embedding_server.address, "compliance", "embedding") as kept:
        assert await call_serial(kept) == folder.serial("compliance")
        ensure_dev_certificates(folder.path, "medai.local", 90, renew=True, names=["embedding"])
        new = folder.serial("embedding")
        assert new != old

        def presented() -> int:
            return presented_certificate(embedding_server.port, "embedding", folder, "compliance")[0].serial_number

        await asyncio.to_thread(_wait_for, lambda: presented() == new)
        assert await call_serial(kept) == folder.serial("compliance")  # the running connection is untouched
    async with folder.aio_channel(embedding_server.address, "compliance", "embedding") as fresh:
        assert await call_serial(fresh) == folder.serial("compliance")


async def test_a_client_certificate_replaced_on_disk_is_presented_on_new_calls_without_a_failure(
        embedding_server, folder) -> None:
    settings = GatewaySettings(tls=folder.settings(reload_seconds=RELOAD_SECONDS))
    # A client of the compliance identity: compliance's own settings type is not needed, only its files.
    tls = mesh_tls(settings.tls, "compliance", settings.app.state_dir)
    channel = open_channel(embedding_server.address, tls=tls, server_name="worker")
    seen: list[int] = []
    try:
        seen.append(await call_serial(channel))
        ensure_dev_certificates(folder.path, "medai.local", 90, renew=True, names=["compliance"])
        new = folder.serial("compliance")
        deadline = time.monotonic() + 10
        while seen[-1] != new and time.monotonic() < deadline:
            seen.append(await call_serial(channel))  # never fails: old connection until the new one is used
            await asyncio.sleep(RELOAD_SECONDS / 2)
        assert seen[-1] == new
        assert len(set(seen)) == 2
    finally:
        await channel.close()


async def test_reloading_channel_serves_stubs_made_before_a_rotation(embedding_server, folder) -> None:
    tls = mesh_tls(folder.settings(reload_seconds=RELOAD_SECONDS), "monitor", Path("."))
    channel = open_channel(embedding_server.address, tls=tls, server_name="embedding")
    stub = health_pb2_grpc.HealthStub(channel)  # multicallables bound before the rotation
    try:
        assert (await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == 1
        ensure_dev_certificates(folder.path, "medai.local", 90, renew=True, names=["monitor"])
        os.utime(folder.path / "monitor.crt")
        await asyncio.sleep(RELOAD_SECONDS * 3)
        stream = stub.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        assert (await stream.read()).status == 1
        stream.cancel()
    finally:
        await channel.close()
