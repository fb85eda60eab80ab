"""gRPC servicers: translate protobuf <-> domain (via `mapper`) and call the core; nothing else."""
from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from libs.rpc.catalog import list_models_to_pb, model_card_to_pb, model_health_to_pb
from libs.rpc.context import current_request_id
from medai.common.v1 import inference_pb2, models_pb2, models_pb2_grpc
from medai.compliance.v1 import compliance_pb2, compliance_pb2_grpc
from services.compliance import mapper
from services.compliance.core.catalog import ModelCatalog
from services.compliance.core.proxy import ComplianceProxy
from services.compliance.core.types import Caller


def _caller(caller: inference_pb2.Caller) -> Caller:
    return mapper.caller_from_pb(caller, current_request_id())


class ComplianceServicer(compliance_pb2_grpc.ComplianceServicer):
    """medai.compliance.v1.Compliance."""

    def __init__(self, proxy: ComplianceProxy) -> None:
        self._proxy = proxy

    async def Predict(self, request: compliance_pb2.ProxyPredictRequest,
                      context: grpc.aio.ServicerContext) -> inference_pb2.PredictResponse:
        result = await self._proxy.predict(_caller(request.caller), mapper.predict_input_from_pb(request.request),
                                           context.time_remaining())
        return mapper.predict_response_to_pb(result)

    async def PredictStream(self, request: compliance_pb2.ProxyPredictRequest,
                            context: grpc.aio.ServicerContext) -> AsyncIterator[inference_pb2.PredictStreamChunk]:
        chunks = self._proxy.predict_stream(_caller(request.caller), mapper.predict_input_from_pb(request.request),
                                            context.time_remaining())
        async for chunk in chunks:
            yield mapper.stream_chunk_to_pb(chunk)

    async def Deidentify(self, request: compliance_pb2.ProxyDeidentifyRequest,
                         context: grpc.aio.ServicerContext) -> inference_pb2.DeidentifyResponse:
        redaction = await self._proxy.deidentify(_caller(request.caller), request.request.text)
        return mapper.deidentify_response_to_pb(redaction)

    async def DeleteSession(self, request: compliance_pb2.ProxyDeleteSessionRequest,
                            context: grpc.aio.ServicerContext) -> inference_pb2.DeleteSessionResponse:
        deleted = await self._proxy.delete_session(_caller(request.caller), request.request.model_id,
                                                   request.request.session_id, context.time_remaining())
        return inference_pb2.DeleteSessionResponse(deleted=deleted)

    async def ListAuditRecords(self, request: compliance_pb2.ProxyListAuditRecordsRequest,
                               context: grpc.aio.ServicerContext) -> inference_pb2.ListAuditRecordsResponse:
        query = request.request
        records = await self._proxy.list_audit_records(_caller(request.caller), after_sequence=query.after_sequence,
                                                       limit=query.limit, request_id=query.request_id)
        return mapper.audit_records_to_pb(records)

    async def VerifyAudit(self, request: compliance_pb2.ProxyVerifyAuditRequest,
                          context: grpc.aio.ServicerContext) -> inference_pb2.VerifyAuditResponse:
        return mapper.verification_to_pb(await self._proxy.verify_audit(_caller(request.caller)))

    async def RecordRefusals(self, request: compliance_pb2.RecordRefusalsRequest,
                             context: grpc.aio.ServicerContext) -> compliance_pb2.RecordRefusalsResponse:
        recorded = await self._proxy.record_refusals(mapper.refusals_from_pb(request))
        return compliance_pb2.RecordRefusalsResponse(recorded=recorded)


class ModelCatalogServicer(models_pb2_grpc.ModelCatalogServicer):
    """medai.common.v1.ModelCatalog aggregated over every worker.

    Not `libs.rpc.catalog.ModelCatalogServicer`: lookups here are async and health takes the caller's deadline.
    """

    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog

    async def ListModels(self, request: models_pb2.ListModelsRequest,
                         context: grpc.aio.ServicerContext) -> models_pb2.ListModelsResponse:
        return list_models_to_pb(self._catalog.list_models(request.model_type))

    async def GetModelInfo(self, request: models_pb2.GetModelInfoRequest,
                           context: grpc.aio.ServicerContext) -> models_pb2.ModelInfo:
        return model_card_to_pb(await self._catalog.model_info(request.model_id))

    async def GetModelHealth(self, request: models_pb2.GetModelHealthRequest,
                             context: grpc.aio.ServicerContext) -> models_pb2.ModelHealth:
        health = await self._catalog.model_health(request.model_id, context.time_remaining())
        return model_health_to_pb(health)
