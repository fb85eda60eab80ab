"""Real HTTP endpoints on 127.0.0.1 for tests: Prometheus expositions, failing and refusing targets."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, MetricsHandler


@contextmanager
def http_endpoint(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serves handler on 127.0.0.1:<free port>; yields its /metrics URL. Short poll: stops in milliseconds."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def metrics_endpoint(registry: CollectorRegistry) -> AbstractContextManager[str]:
    """prometheus_client's own exposition handler serving a private registry."""
    return http_endpoint(MetricsHandler.factory(registry))


class _ServerError(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(500)

    def log_message(self, *args: object) -> None:
        pass


def failing_endpoint() -> AbstractContextManager[str]:
    """Answers every request with HTTP 500."""
    return http_endpoint(_ServerError)


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port bound but not listening: connections to it are refused while it is held."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
