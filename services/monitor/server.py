"""Monitor server assembly: `create_server(settings, deps)`."""
from __future__ import annotations

from dataclasses import dataclass

import grpc

from libs.config import MonitorSettings
from libs.rpc.health import HealthReporter
from libs.rpc.server import new_server
from medai.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from services.monitor.core.monitor import MonitorCore
from services.monitor.servicer import MonitorServicer

SERVICE_NAMES = [monitor_pb2.DESCRIPTOR.services_by_name["Monitor"].full_name]


@dataclass
class MonitorDeps:
    core: MonitorCore
    health: HealthReporter


def create_server(settings: MonitorSettings, deps: MonitorDeps) -> tuple[grpc.aio.Server, int]:
    def register(server: grpc.aio.Server) -> None:
        monitor_pb2_grpc.add_MonitorServicer_to_server(MonitorServicer(deps.core), server)

    return new_server(settings, deps.health, SERVICE_NAMES, register)
