"""Gateway server assembly: `create_server(settings, deps)`."""
from __future__ import annotations

from dataclasses import dataclass

import grpc

from libs.config import GatewaySettings
from libs.rpc.health import HealthReporter
from libs.rpc.server import new_server
from medai.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from services.gateway.core.gateway import Gateway
from services.gateway.servicer import GatewayServicer

SERVICE_NAMES = [gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name]


@dataclass
class GatewayDeps:
    gateway: Gateway
    health: HealthReporter


def create_server(settings: GatewaySettings, deps: GatewayDeps) -> tuple[grpc.aio.Server, int]:
    def register(server: grpc.aio.Server) -> None:
        gateway_pb2_grpc.add_GatewayServicer_to_server(GatewayServicer(deps.gateway), server)

    return new_server(settings, deps.health, SERVICE_NAMES, register)
