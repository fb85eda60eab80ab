"""The public Gateway API: translates each RPC to a gateway use case and back."""
from __future__ import annotations

from medai.gateway.v1 import gateway_pb2_grpc
from services.gateway import mapper
from services.gateway.core.docs import ApiDocs
from services.gateway.core.gateway import Gateway


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, gateway: Gateway, docs: ApiDocs) -> None:
        self._gateway = gateway
        self._docs = docs

    async def GetHealth(self, request, context):
        return mapper.mesh_health_to_pb(await self._gateway.health())

    async def GetMetrics(self, request, context):
        return mapper.metrics_body(await self._gateway.metrics())

    async def ListModels(self, request, context):
        records = await self._gateway.list_models(mapper.call_metadata(context), request.model_type)
        return mapper.list_models_response(records)

    async def GetModelInfo(self, request, context):
        return await self._gateway.model_info(mapper.call_metadata(context), request.model_id)

    async def GetModelHealth(self, request, context):
        return await self._gateway.model_health(mapper.call_metadata(context), request.model_id)

    async def Predict(self, request, context):
        return await self._gateway.predict(mapper.call_metadata(context), mapper.predict_call(request))

    async def PredictStream(self, request, context):
        async for chunk in self._gateway.predict_stream(mapper.call_metadata(context), mapper.predict_call(request)):
            yield chunk

    async def Deidentify(self, request, context):
        return await self._gateway.deidentify(mapper.call_metadata(context), request.text)

    async def DeleteSession(self, request, context):
        return await self._gateway.delete_session(mapper.call_metadata(context), request.model_id,
                                                  request.session_id)

    async def ListAuditRecords(self, request, context):
        return await self._gateway.list_audit_records(mapper.call_metadata(context), request)

    async def VerifyAudit(self, request, context):
        return await self._gateway.verify_audit(mapper.call_metadata(context))

    async def GetOpenApi(self, request, context):
        return mapper.http_body(self._docs.openapi())

    async def GetDocs(self, request, context):
        return mapper.http_body(self._docs.page())

    async def GetDocsAsset(self, request, context):
        return mapper.http_body(self._docs.asset(request.name))

    async def ListAlerts(self, request, context):
        return await self._gateway.alerts(mapper.call_metadata(context))

    async def GetSystemMetrics(self, request, context):
        return await self._gateway.system_metrics(mapper.call_metadata(context))
