"""Domain <-> protobuf conversion, the watch backoff, and the core's layering."""
from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

from grpc_health.v1 import health_pb2

from services.monitor import mapper
from services.monitor.core.alerts import Alert
from services.monitor.core.health import MeshHealth, MeshStatus, ServiceState, ServiceStatus
from services.monitor.watcher import Backoff

T0 = datetime(2024, 1, 1, 12, 30, 15, 250_000, tzinfo=UTC)
CORE = Path(__file__).resolve().parents[3] / "services" / "monitor" / "core"


def test_mesh_health_to_pb() -> None:
    health = MeshHealth(MeshStatus.DEGRADED, {"gateway": ServiceState(ServiceStatus.SERVING, T0),
                                              "embedding": ServiceState(ServiceStatus.UNKNOWN, T0)},
                        T0 + timedelta(seconds=1))
    message = mapper.mesh_health(health)
    assert message.status == "DEGRADED"
    assert {name: s.status for name, s in message.services.items()} == {"gateway": "SERVING", "embedding": "UNKNOWN"}
    assert message.services["gateway"].since.ToDatetime(tzinfo=UTC) == T0
    assert message.checked_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(seconds=1)


def test_alerts_and_body_to_pb() -> None:
    alert = Alert("cpu_high", "", "warning", "CPU at 95.0% (threshold 90.0%)", 95.0, 90.0, T0)
    [message] = mapper.alerts([alert]).alerts
    assert (message.rule, message.severity, message.summary, message.value, message.threshold) == (
        "cpu_high", "warning", alert.summary, 95.0, 90.0)
    assert message.since.ToDatetime(tzinfo=UTC) == T0
    body = mapper.http_body(b"medai_x 1\n")
    assert (body.content_type, body.data) == ("text/plain; version=0.0.4; charset=utf-8", b"medai_x 1\n")


def test_health_statuses_map_to_serving_or_not() -> None:
    codes = health_pb2.HealthCheckResponse
    assert mapper.service_status(codes.SERVING) is ServiceStatus.SERVING
    for code in (codes.NOT_SERVING, codes.UNKNOWN, codes.SERVICE_UNKNOWN):
        assert mapper.service_status(code) is ServiceStatus.NOT_SERVING


def test_backoff_doubles_to_its_cap_with_jitter_and_resets() -> None:
    exact = Backoff(0.1, 0.5, jitter=lambda: 1.0)
    assert [round(exact.delay(), 3) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    exact.reset()
    assert exact.delay() == 0.1
    assert Backoff(1.0, 4.0, jitter=lambda: 0.0).delay() == 0.5


def test_core_imports_neither_grpc_nor_generated_messages() -> None:
    forbidden = ("grpc", "grpc_health", "medai", "google.protobuf", "google.api")
    files = sorted(CORE.glob("*.py"))
    assert len(files) > 5
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"
