"""Clients of a mutual-TLS mesh for tests and benchmarks: channels and HTTPS as any identity of a certificate
folder, impostors from another CA, and the certificate a server presents to a new connection."""
from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import httpx
from cryptography import x509

from libs.config import TlsFiles, TlsSettings
from libs.config.tls import CA_CERT_NAME
from libs.tls.issue import ensure_dev_certificates

if TYPE_CHECKING:
    from tests.support.local_mesh import LocalMesh

HANDSHAKE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class CertFolder:
    """A folder of `medai certs dev` (or one made like it): ca.crt, <identity>.crt/.key."""

    path: Path

    def files(self, identity: str) -> TlsFiles:
        return TlsFiles(self.path / CA_CERT_NAME, self.path / f"{identity}.crt", self.path / f"{identity}.key")

    def settings(self, **overrides: object) -> TlsSettings:
        """TLS settings of a process using this folder (in-process servers of a test)."""
        return TlsSettings(enabled=True, dir=self.path, ca_file=None, cert_file=None, key_file=None,
                           **overrides)

    def credentials(self, identity: str) -> grpc.ChannelCredentials:
        files = self.files(identity)
        return grpc.ssl_channel_credentials(files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes())

    def aio_channel(self, address: str, identity: str, server_name: str) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(address, self.credentials(identity),
                                       options=[("grpc.ssl_target_name_override", server_name)])

    def channel(self, address: str, identity: str, server_name: str) -> grpc.Channel:
        return grpc.secure_channel(address, self.credentials(identity),
                                   options=[("grpc.ssl_target_name_override", server_name)])

    def ssl_context(self, identity: str | None) -> ssl.SSLContext:
        """A client context trusting this folder's CA, presenting identity's certificate (None: none)."""
        context = ssl.create_default_context(cafile=str(self.path / CA_CERT_NAME))
        if identity is not None:
            files = self.files(identity)
            context.load_cert_chain(files.cert, files.key)
        return context

    def http_client(self, identity: str | None, **options: object) -> httpx.Client:
        return httpx.Client(verify=self.ssl_context(identity), **options)

    def serial(self, identity: str) -> int:
        return x509.load_pem_x509_certificate(self.files(identity).cert.read_bytes()).serial_number


def dev_folder(path: Path, trust_domain: str = "medai.local", days: int = 90) -> CertFolder:
    """A fresh development CA and every identity's certificate in `path`."""
    ensure_dev_certificates(path, trust_domain, days)
    return CertFolder(path)


def presented_certificate(port: int, server_name: str, folder: CertFolder, identity: str,
                          alpn: tuple[str, ...] = ("h2",)) -> tuple[x509.Certificate, str | None]:
    """The certificate a server on 127.0.0.1:port presents to a new connection (verified against the folder's
    CA and server_name), and the ALPN protocol it chose."""
    context = folder.ssl_context(identity)
    context.set_alpn_protocols(list(alpn))
    with socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT_SECONDS) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as connection:
        der = connection.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der), connection.selected_alpn_protocol()


def mesh_aio_channel(mesh: LocalMesh, service: str, identity: str) -> grpc.aio.Channel:
    """A channel straight to a service of a local mesh, as `identity` (the caller that service admits), over
    mutual TLS with the mesh's certificates, or in plaintext when the mesh runs without TLS."""
    if not mesh.tls:
        return grpc.aio.insecure_channel(mesh.ports.address(service))
    return CertFolder(mesh.state_dir / "tls").aio_channel(mesh.ports.address(service), identity, service)


def mesh_metrics_text(mesh: LocalMesh, service: str, timeout: float = 10) -> str:
    """A service's own Prometheus exposition, read as the monitor does (HTTPS with its certificate)."""
    port = mesh.ports.metrics[service]
    if not mesh.tls:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=timeout).text
    with CertFolder(mesh.state_dir / "tls").http_client("monitor") as client:
        return client.get(f"https://127.0.0.1:{port}/metrics", extensions={"sni_hostname": service},
                          timeout=timeout).text
