"""`medai.monitor.v1.Monitor`: translates between protobuf and the monitor core."""
from __future__ import annotations

from google.api import httpbody_pb2

from medai.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from services.monitor import mapper
from services.monitor.core.monitor import MonitorCore


class MonitorServicer(monitor_pb2_grpc.MonitorServicer):
    def __init__(self, core: MonitorCore) -> None:
        self._core = core

    async def GetMeshHealth(self, request, context) -> monitor_pb2.MeshHealth:
        return mapper.mesh_health(self._core.mesh_health())

    async def GetMeshMetrics(self, request, context) -> httpbody_pb2.HttpBody:
        return mapper.http_body(await self._core.mesh_metrics())

    async def GetSystemMetrics(self, request, context) -> monitor_pb2.SystemMetrics:
        return mapper.system_metrics(await self._core.system_metrics())

    async def ListAlerts(self, request, context) -> monitor_pb2.ListAlertsResponse:
        return mapper.alerts(self._core.alerts(), self._core.alert_history())
