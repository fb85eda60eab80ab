"""The monitor's traffic signals from scraped families: p95 from histogram buckets (as Prometheus'
histogram_quantile), error ratios, failures and spool depths over a window, counter resets."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.monitor.core import exposition
from services.monitor.core.traffic import TrafficWindow, histogram_quantile, snapshot

GATEWAY_PREDICT = "/medai.gateway.v1.Gateway/Predict"


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = {0.1: 0.0, 1.0: 50.0, 5.0: 90.0, 10.0: 100.0, float("inf"): 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.0)
    assert histogram_quantile(0.95, buckets) == pytest.approx(7.5)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1 + 0.9 * 0.5)
    assert histogram_quantile(0.99, {1.0: 0.0, float("inf"): 10.0}) == 1.0  # in +Inf: the last finite bound
    assert histogram_quantile(0.95, {1.0: 0.0, float("inf"): 0.0}) is None


class Mesh:
    """Two services' registries, scraped the way the monitor does (parsed and labelled)."""

    def __init__(self) -> None:
        self.gateway, self.compliance = CollectorRegistry(), CollectorRegistry()
        self.calls = Counter("medai_rpc_requests_total", "c", ["method", "code", "model_id"], registry=self.gateway)
        self.duration = Histogram("medai_rpc_duration_seconds", "d", ["method", "model_id"],
                                  buckets=(1, 5, 10), registry=self.gateway)
        self.compliance_calls = Counter("medai_rpc_requests_total", "c", ["method", "code", "model_id"],
                                        registry=self.compliance)
        self.failures = Counter("medai_deidentify_failures_total", "f", registry=self.compliance)
        self.spool = Gauge("medai_audit_spool_records", "s", registry=self.compliance)

    def families(self):
        return exposition.merge({
            name: exposition.parse(generate_latest(registry).decode(), name)
            for name, registry in (("gateway", self.gateway), ("compliance", self.compliance))})


def test_window_rates_from_two_scrapes():
    mesh = Mesh()
    window = TrafficWindow(seconds=300)
    first = window.add(snapshot(mesh.families(), at=0.0))
    assert first.p95_seconds is None and first.error_ratio == {}

    for _ in range(19):
        mesh.duration.labels(GATEWAY_PREDICT, "m").observe(7.0)  # slow unary calls
    mesh.duration.labels(GATEWAY_PREDICT, "m").observe(0.5)
    mesh.duration.labels("/medai.gateway.v1.Gateway/PredictStream", "m").observe(0.1)  # streams do not count
    mesh.duration.labels("/grpc.health.v1.Health/Watch", "").observe(0.1)
    mesh.calls.labels(GATEWAY_PREDICT, "OK", "m").inc(99)
    mesh.calls.labels(GATEWAY_PREDICT, "INVALID_ARGUMENT", "m").inc(1)  # the client's error, not ours
    mesh.compliance_calls.labels("/c/Predict", "OK", "").inc(8)
    mesh.compliance_calls.labels("/c/Predict", "UNAVAILABLE", "").inc(2)
    mesh.compliance_calls.labels("/grpc.health.v1.Health/Watch", "UNAVAILABLE", "").inc(50)
    mesh.failures.inc(3)
    mesh.spool.set(4)

    reading = window.add(snapshot(mesh.families(), at=10.0))
    assert reading.p95_seconds == pytest.approx(5 + 5 * (0.95 * 20 - 1) / 19)
    assert reading.error_ratio == {"gateway": 0.0, "compliance": pytest.approx(0.2)}
    assert reading.deidentify_failures == {"compliance": 3.0}
    assert reading.audit_spool == {"compliance": 4.0}


def test_old_snapshots_leave_the_window_and_restarts_count_from_zero():
    mesh = Mesh()
    window = TrafficWindow(seconds=60)
    window.add(snapshot(mesh.families(), at=0.0))
    mesh.failures.inc(5)
    window.add(snapshot(mesh.families(), at=30.0))
    assert window.add(snapshot(mesh.families(), at=100.0)).deidentify_failures == {"compliance": 0.0}

    restarted = Mesh()  # the process restarted: its counter starts again below the last value
    restarted.failures.inc(2)
    assert window.add(snapshot(restarted.families(), at=110.0)).deidentify_failures == {"compliance": 2.0}
