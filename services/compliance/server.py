"""Compliance server assembly: `create_server(settings, deps)`."""
from __future__ import annotations

from dataclasses import dataclass

import grpc

from libs.config import ComplianceSettings
from libs.rpc.health import HealthReporter
from libs.rpc.server import new_server
from medai.common.v1 import models_pb2, models_pb2_grpc
from medai.compliance.v1 import compliance_pb2, compliance_pb2_grpc
from services.compliance.core.service import ComplianceCore
from services.compliance.servicer import ComplianceServicer, ModelCatalogServicer

SERVICE_NAMES = [
    compliance_pb2.DESCRIPTOR.services_by_name["Compliance"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["ModelCatalog"].full_name,
]


@dataclass
class ComplianceDeps:
    core: ComplianceCore
    health: HealthReporter


def create_server(settings: ComplianceSettings, deps: ComplianceDeps) -> tuple[grpc.aio.Server, int]:
    def register(server: grpc.aio.Server) -> None:
        compliance_pb2_grpc.add_ComplianceServicer_to_server(ComplianceServicer(deps.core.proxy), server)
        models_pb2_grpc.add_ModelCatalogServicer_to_server(ModelCatalogServicer(deps.core.catalog), server)

    return new_server(settings, deps.health, SERVICE_NAMES, register)
