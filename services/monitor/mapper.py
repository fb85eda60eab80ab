"""Protobuf <-> domain conversion for the monitor."""
from __future__ import annotations

from collections.abc import Iterable

from google.api import httpbody_pb2
from grpc_health.v1 import health_pb2

from libs.rpc.timestamps import timestamp_to_pb
from medai.monitor.v1 import monitor_pb2
from services.monitor.core.alerts import Alert
from services.monitor.core.exposition import CONTENT_TYPE
from services.monitor.core.gpu import GpuReading
from services.monitor.core.health import MeshHealth, ServiceStatus
from services.monitor.core.system import SystemReading


def service_status(health_status: int) -> ServiceStatus:
    """A grpc.health.v1 status as the monitor records it (anything but SERVING is not serving)."""
    if health_status == health_pb2.HealthCheckResponse.SERVING:
        return ServiceStatus.SERVING
    return ServiceStatus.NOT_SERVING


def mesh_health(health: MeshHealth) -> monitor_pb2.MeshHealth:
    return monitor_pb2.MeshHealth(
        status=health.status.value,
        services={
            name: monitor_pb2.ServiceHealth(status=state.status.value, since=timestamp_to_pb(state.since))
            for name, state in health.services.items()
        },
        checked_at=timestamp_to_pb(health.checked_at),
        not_serving=health.not_serving,
    )


def _gpu(gpu: GpuReading) -> monitor_pb2.GpuMetrics:
    return monitor_pb2.GpuMetrics(
        index=gpu.index,
        name=gpu.name,
        utilization_percent=gpu.utilization_percent,
        memory_used_bytes=gpu.memory_used_bytes,
        memory_total_bytes=gpu.memory_total_bytes,
        temperature_celsius=gpu.temperature_celsius,
    )


def system_metrics(reading: SystemReading) -> monitor_pb2.SystemMetrics:
    return monitor_pb2.SystemMetrics(
        cpu_percent=reading.cpu_percent,
        memory_used_bytes=reading.memory_used_bytes,
        memory_total_bytes=reading.memory_total_bytes,
        disk_used_bytes=reading.disk_used_bytes,
        disk_total_bytes=reading.disk_total_bytes,
        gpus=[_gpu(gpu) for gpu in reading.gpus],
        collected_at=timestamp_to_pb(reading.collected_at),
        memory_percent=reading.memory_percent,
        disk_percent=reading.disk_percent,
    )


def alert(value: Alert) -> monitor_pb2.Alert:
    message = monitor_pb2.Alert(rule=value.rule, severity=value.severity, summary=value.summary, value=value.value,
                                threshold=value.threshold, since=timestamp_to_pb(value.since),
                                instance=value.instance, state=value.state.value, for_seconds=value.for_seconds)
    if value.fired_at is not None:
        message.fired_at.CopyFrom(timestamp_to_pb(value.fired_at))
    if value.resolved_at is not None:
        message.resolved_at.CopyFrom(timestamp_to_pb(value.resolved_at))
    return message


def alerts(active: Iterable[Alert], history: Iterable[Alert] = ()) -> monitor_pb2.ListAlertsResponse:
    return monitor_pb2.ListAlertsResponse(alerts=[alert(a) for a in active], history=[alert(a) for a in history])


def http_body(exposition: bytes) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=CONTENT_TYPE, data=exposition)
