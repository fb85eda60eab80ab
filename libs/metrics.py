"""Prometheus metrics common to every service, and the per-service HTTP endpoint.

Series carry no `service` label here: the monitor adds it when it aggregates the mesh's
metrics, and in a cluster the scrape target identifies the service. No label ever holds
request content.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from libs.tls import MeshTls

# model_id: the known model a call was about ("" for calls about none, or refused before it was known).
RPC_REQUESTS = Counter(
    "medai_rpc_requests_total", "gRPC calls handled, by method, status code and model", ["method", "code", "model_id"]
)
RPC_DURATION = Histogram(
    "medai_rpc_duration_seconds",
    "Time to handle a gRPC call (streams: until the last message)",
    ["method", "model_id"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RPC_IN_FLIGHT = Gauge("medai_rpc_in_flight", "gRPC calls being handled now")
SERVICE_SERVING = Gauge("medai_service_serving", "1 while this service reports SERVING, else 0")


def serve_metrics(host: str, port: int, tls: MeshTls | None = None) -> Callable[[], None]:
    """Start the Prometheus endpoint on host:port (a daemon thread); returns a stop function. With mesh TLS:
    HTTPS, client certificates required, only TLS_METRICS_CALLERS admitted (`libs.tls.https`)."""
    if port == 0:
        return lambda: None
    if tls is not None:
        from libs.tls.https import start_metrics_https

        return start_metrics_https(host, port, tls)
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop

# Shared by every model worker (LM engine and embedding batcher), labelled by model.
REQUEST_QUEUE_TIME = Histogram(
    "medai_request_queue_time_seconds",
    "Time a request waited for a model slot or batch",
    ["model_id"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
