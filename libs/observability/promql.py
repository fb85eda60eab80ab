"""PromQL pieces shared by the alert rules and the dashboards.

Every series carries `service`: Prometheus' scrape configs set it per target (compose; in Kubernetes
from the pod's app.kubernetes.io/name), and the monitor's /metrics adds it when it aggregates the mesh,
so the same queries work on both.
"""
from __future__ import annotations

# Health checks and reflection are not application calls; streams last as long as their generation.
NOT_CALLS = "/grpc[.](health|reflection)[.].*"
STREAMS = ".*/(PredictStream|Stream[A-Za-z]*)"
# Server-side failures (HTTP 5xx); 4xx answers (bad input, refused keys, 429) are the client's.
ERROR_CODES = "INTERNAL|UNKNOWN|UNAVAILABLE|DEADLINE_EXCEEDED|DATA_LOSS"
WORKERS = "generation|embedding|conversation"
# Grafana's rate window (the real-Prometheus test puts a fixed window in its place).
RATE = "$__rate_interval"


def calls(service: str = "", extra: str = "") -> str:
    """Label matchers of application calls (optionally of one service)."""
    matchers = [f'method!~"{NOT_CALLS}"']
    if service:
        matchers.insert(0, f'service="{service}"')
    if extra:
        matchers.append(extra)
    return ", ".join(matchers)


def route(expr: str) -> str:
    """expr with a `route` label: the gRPC method's name (each is one HTTP route at the edge)."""
    return f'label_replace({expr}, "route", "$1", "method", ".*/([^/]+)$")'


def quantile(q: float, metric: str, by: str, selector: str = "", window: str = RATE, *, by_route: bool = False) -> str:
    """histogram_quantile of a histogram's buckets over `window`, per `by`."""
    rate = f"rate({metric}_bucket{{{selector}}}[{window}])"
    if by_route:
        rate = route(rate)
    return f"histogram_quantile({q}, sum by ({by}, le) ({rate}))"


def error_ratio(by: str, selector: str, window: str = RATE) -> str:
    """Share of calls that failed server-side, per `by`; 0 (not absent) while none failed."""
    total = f"sum by ({by}) (rate(medai_rpc_requests_total{{{selector}}}[{window}]))"
    errors = f'sum by ({by}) (rate(medai_rpc_requests_total{{{selector}, code=~"{ERROR_CODES}"}}[{window}]))'
    return f"({errors} or {total} * 0) / {total}"
