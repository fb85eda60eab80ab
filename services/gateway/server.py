"""Gateway server assembly: `build_deps(settings)` and `create_server(settings, deps)`."""
from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from libs.config import GatewaySettings
from libs.rpc.health import HealthReporter
from libs.rpc.interceptors import ErrorPresenter
from libs.rpc.server import new_server
from libs.security.secret import load_secret
from libs.stores.db import Database, open_database
from libs.stores.keys import KeyStore
from libs.stores.ratelimit import open_rate_limit_store
from libs.tls import mesh_tls
from medai.gateway.v1 import gateway_pb2, gateway_pb2_grpc, openai_pb2_grpc
from services.gateway import mapper
from services.gateway.clients import ComplianceClient, MonitorClient
from services.gateway.core.auth import Authenticator, KeyCachePolicy
from services.gateway.core.catalog import ModelCatalog
from services.gateway.core.docs import ApiDocs
from services.gateway.core.gateway import Gateway, GatewayLimits
from services.gateway.core.model import RateLimits, ServiceStatus
from services.gateway.core.openai import OpenAIApi
from services.gateway.core.quota import Quotas
from services.gateway.core.refusals import RefusalAudit, RefusalAuditPolicy
from services.gateway.openai_servicer import ERROR_PRESENTERS as OPENAI_ERROR_PRESENTERS
from services.gateway.openai_servicer import SERVICE_NAME as OPENAI_SERVICE
from services.gateway.openai_servicer import OpenAIServicer
from services.gateway.servicer import GatewayServicer

SERVICE_NAMES = [gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name, OPENAI_SERVICE]
# Public streams that end with an in-band error event when they fail after they began; OpenAI's error shape.
ERROR_PRESENTERS = {
    f"/{SERVICE_NAMES[0]}/PredictStream": ErrorPresenter(stream_chunk=mapper.stream_error_chunk),
    **OPENAI_ERROR_PRESENTERS,
}


@dataclass
class GatewayDeps:
    gateway: Gateway
    health: HealthReporter
    keys: KeyStore
    db: Database
    compliance: ComplianceClient
    monitor: MonitorClient
    refusals: RefusalAudit
    docs: ApiDocs

    async def close(self) -> None:
        await self.gateway.close()
        await self.compliance.close()
        await self.monitor.close()
        await self.db.close()


async def build_deps(settings: GatewaySettings) -> GatewayDeps:
    """The key store (migrated), clients of compliance and the monitor, and the gateway core."""
    db = await open_database(settings.app.resolved_database_url(), timeout=settings.key_store_timeout_seconds)
    keys = KeyStore(db, load_secret(settings.app))
    await keys.migrate()
    tls = mesh_tls(settings.tls, settings.service_name, settings.app.state_dir)
    compliance = ComplianceClient(settings.compliance_address, tls)
    monitor = MonitorClient(settings.monitor_address, tls)
    limits = GatewayLimits(
        max_in_flight=settings.max_in_flight,
        default_deadline_seconds=settings.default_deadline_seconds,
        max_inputs=settings.max_inputs,
        max_input_chars=settings.max_input_chars,
        max_request_bytes=settings.max_request_bytes,
        max_chat_messages=settings.max_chat_messages,
        model_type_deadlines=dict(settings.model_type_deadline_seconds),
    )
    quotas = Quotas(open_rate_limit_store(settings.app.redis_url, settings.rate_limit_redis_retry_seconds))
    role_limits = {role: RateLimits(limits.requests_per_minute, limits.tokens_per_minute)
                   for role, limits in settings.role_rate_limits.items()}
    authenticator = Authenticator(
        keys, KeyCachePolicy(settings.key_cache_ttl_seconds, settings.key_cache_stale_seconds,
                             settings.key_store_retry_seconds),
        role_limits=lambda role: role_limits.get(role, RateLimits()),
    )
    refusals = RefusalAudit(compliance, RefusalAuditPolicy(settings.refusal_audit_per_source_per_minute,
                                                           settings.refusal_audit_total_per_minute))
    gateway = Gateway(authenticator, ModelCatalog(compliance, settings.catalog_ttl_seconds), compliance, monitor,
                      limits, ServiceStatus("SERVING", time.time()), quotas, refusals)
    return GatewayDeps(gateway, HealthReporter(SERVICE_NAMES), keys, db, compliance, monitor, refusals, ApiDocs())


def create_server(settings: GatewaySettings, deps: GatewayDeps) -> tuple[grpc.aio.Server, int]:
    def register(server: grpc.aio.Server) -> None:
        gateway_pb2_grpc.add_GatewayServicer_to_server(GatewayServicer(deps.gateway, deps.docs), server)
        openai_pb2_grpc.add_OpenAIServicer_to_server(OpenAIServicer(OpenAIApi(deps.gateway)), server)

    return new_server(settings, deps.health, SERVICE_NAMES, register, ERROR_PRESENTERS)
