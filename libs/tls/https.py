"""HTTPS with client certificates for the Prometheus endpoints, and the scraper's side of it (Python's ssl).

The server admits only the identities TLS_METRICS_CALLERS lists (the monitor, and Prometheus in compose and
Kubernetes), checked from the client certificate's SPIFFE ID after the handshake: others get 403 and a log
line. Each connection's handshake runs in its own thread (prometheus_client's own TLS wraps the listening
socket, so one slow client would hold up every scrape), with the SSL context of the certificate files
current at accept time: a rotated certificate is used from the next connection on.
"""
from __future__ import annotations

import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Collection
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.exposition import MetricsHandler

from libs.tls import MeshTls
from libs.tls.identity import identity_of
from libs.tls.material import Material

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_SECONDS = 5.0
# TLS 1.2 with forward-secret AEAD suites, or TLS 1.3 (whose suites are all such).
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_context(material: Material) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=material.ca.decode())
    context.load_cert_chain(material.files.cert, material.files.key)
    return context


def client_context(material: Material) -> ssl.SSLContext:
    """Verifies the server against the mesh CA and its name (given per request: httpx's `sni_hostname`)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=material.ca.decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(material.files.cert, material.files.key)
    return context


class _Contexts:
    """The server context of the current certificate files (rebuilt when they change)."""

    def __init__(self, mesh: MeshTls, build: Callable[[Material], ssl.SSLContext]) -> None:
        self._mesh, self._build = mesh, build
        self._material = mesh.source.current
        self._context = build(self._material)
        self._lock = threading.Lock()

    def current(self) -> ssl.SSLContext:
        material = self._mesh.source.poll()
        if material.generation != self._material.generation:
            with self._lock:
                if material.generation != self._material.generation:
                    try:
                        self._context = self._build(material)
                    except (ssl.SSLError, OSError) as error:  # files replaced again meanwhile: next time
                        log.warning("metrics endpoint kept its certificate: %s", type(error).__name__)
                    else:
                        self._material = material
        return self._context


def _peer_sans(connection: ssl.SSLSocket) -> list[str]:
    certificate = connection.getpeercert() or {}
    return [value for _, value in certificate.get("subjectAltName", ())]


def _handler(registry: Any, admitted: Collection[str], trust_domain: str) -> type[MetricsHandler]:
    class Handler(MetricsHandler):
        timeout = HANDSHAKE_TIMEOUT_SECONDS

        def setup(self) -> None:
            self.request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
            self.request.do_handshake()
            super().setup()

        def do_GET(self) -> None:
            identity = identity_of(_peer_sans(self.connection), trust_domain)
            if identity not in admitted:
                log.warning("metrics endpoint refused %s (admitted: %s)",
                            identity or "a certificate without a mesh identity", ", ".join(sorted(admitted)))
                self.send_error(403, "this caller may not read these metrics")
                return
            super().do_GET()

    Handler.registry = registry
    return Handler


class MetricsHttpsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, contexts: _Contexts) -> None:
        self._contexts = contexts
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        try:
            return self._contexts.current().wrap_socket(connection, server_side=True,
                                                        do_handshake_on_connect=False), address
        except OSError:
            connection.close()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A refused handshake (no certificate, another CA, plaintext) or a dropped client: one line, no trace."""
        error = sys.exc_info()[1]
        reason = getattr(error, "reason", None) or type(error).__name__
        log.warning("metrics endpoint refused a connection from %s: %s", client_address[0], reason)


def start_metrics_https(host: str, port: int, mesh: MeshTls, registry: Any = REGISTRY,
                        admitted: Collection[str] | None = None) -> Callable[[], None]:
    """Serve the registry on host:port over HTTPS (a daemon thread); returns a stop function."""
    admitted = frozenset(mesh.settings.metrics_callers if admitted is None else admitted)
    handler = _handler(registry, admitted, mesh.trust_domain)
    server = MetricsHttpsServer((host, port), handler, _Contexts(mesh, server_context))
    thread = threading.Thread(target=server.serve_forever, name="metrics-https", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


class ReloadingClientContext:
    """An SSL context for HTTPS clients (the monitor's scrapes) that loads a rotated certificate in place: new
    connections present it. `refresh` is an httpx request hook."""

    def __init__(self, mesh: MeshTls) -> None:
        self._mesh = mesh
        self._material = mesh.source.current
        self.context = client_context(self._material)

    def refresh_now(self) -> None:
        material = self._mesh.source.poll()
        if material.generation == self._material.generation:
            return
        try:
            self.context.load_verify_locations(cadata=material.ca.decode())
            self.context.load_cert_chain(material.files.cert, material.files.key)
        except (ssl.SSLError, OSError) as error:
            log.warning("HTTPS client kept its certificate: %s", type(error).__name__)
            return
        self._material = material

    async def refresh(self, _request: object = None) -> None:
        self.refresh_now()
