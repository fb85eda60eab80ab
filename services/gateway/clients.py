"""gRPC clients of the services behind the gateway (implement `core.ports`)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf import empty_pb2

from libs.rpc.channels import open_channel
from libs.rpc.status import translated_rpc_errors
from libs.tls import MeshTls
from medai.common.v1 import inference_pb2, models_pb2, models_pb2_grpc
from medai.compliance.v1 import compliance_pb2, compliance_pb2_grpc
from medai.monitor.v1 import monitor_pb2_grpc
from services.gateway import mapper
from services.gateway.core.model import Caller, CatalogEntry, MeshHealth, PredictCall, Refusal

COMPLIANCE_UNAVAILABLE = "compliance service unavailable, retry later"
MONITOR_UNAVAILABLE = "monitor unavailable"
REFUSALS_TIMEOUT_SECONDS = 5.0


class ComplianceClient:
    """The compliance proxy over one channel, balanced (round robin) over every address its name resolves
    to (in a cluster: a headless Service of the compliance replicas)."""

    unavailable_message = COMPLIANCE_UNAVAILABLE

    def __init__(self, address: str, tls: MeshTls | None = None) -> None:
        self.channel = open_channel(address, idempotent_services=["medai.common.v1.ModelCatalog"],
                                    load_balancing="round_robin", tls=tls, server_name="compliance")
        self._proxy = compliance_pb2_grpc.ComplianceStub(self.channel)
        self._catalog = models_pb2_grpc.ModelCatalogStub(self.channel)

    async def list_models(self, timeout: float | None) -> list[CatalogEntry]:
        async with translated_rpc_errors(self.unavailable_message):
            response = await self._catalog.ListModels(models_pb2.ListModelsRequest(), timeout=timeout)
        return mapper.catalog_entries(response)

    async def model_health(self, model_id: str, timeout: float | None) -> Any:
        async with translated_rpc_errors(self.unavailable_message):
            return await self._catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id=model_id),
                                                      timeout=timeout)

    async def predict(self, caller: Caller, call: PredictCall, timeout: float | None) -> Any:
        async with translated_rpc_errors(self.unavailable_message):
            if call.roles:
                return await self._proxy.Chat(_chat_request(caller, call), timeout=timeout)
            return await self._proxy.Predict(_predict_request(caller, call), timeout=timeout)

    async def predict_stream(self, caller: Caller, call: PredictCall, timeout: float | None) -> AsyncIterator[Any]:
        if call.roles:
            stream = self._proxy.ChatStream(_chat_request(caller, call), timeout=timeout)
        else:
            stream = self._proxy.PredictStream(_predict_request(caller, call), timeout=timeout)
        try:
            async with translated_rpc_errors(self.unavailable_message):
                async for chunk in stream:
                    yield chunk
        finally:
            stream.cancel()  # the client went away: stop the worker's decoding too

    async def deidentify(self, caller: Caller, text: str, timeout: float | None) -> Any:
        request = compliance_pb2.ProxyDeidentifyRequest(
            caller=mapper.caller(caller), request=inference_pb2.DeidentifyRequest(text=text)
        )
        async with translated_rpc_errors(self.unavailable_message):
            return await self._proxy.Deidentify(request, timeout=timeout)

    async def delete_session(self, caller: Caller, model_id: str, session_id: str, timeout: float | None) -> Any:
        request = compliance_pb2.ProxyDeleteSessionRequest(
            caller=mapper.caller(caller),
            request=inference_pb2.DeleteSessionRequest(model_id=model_id, session_id=session_id),
        )
        async with translated_rpc_errors(self.unavailable_message):
            return await self._proxy.DeleteSession(request, timeout=timeout)

    async def list_audit_records(self, caller: Caller, query: Any, timeout: float | None) -> Any:
        request = compliance_pb2.ProxyListAuditRecordsRequest(caller=mapper.caller(caller), request=query)
        async with translated_rpc_errors(self.unavailable_message):
            return await self._proxy.ListAuditRecords(request, timeout=timeout)

    async def verify_audit(self, caller: Caller, timeout: float | None) -> Any:
        request = compliance_pb2.ProxyVerifyAuditRequest(
            caller=mapper.caller(caller), request=inference_pb2.VerifyAuditRequest()
        )
        async with translated_rpc_errors(self.unavailable_message):
            return await self._proxy.VerifyAudit(request, timeout=timeout)

    async def record_refusals(self, refusals: Sequence[Refusal]) -> None:
        request = compliance_pb2.RecordRefusalsRequest(refusals=[mapper.refusal(r) for r in refusals])
        async with translated_rpc_errors(self.unavailable_message):
            await self._proxy.RecordRefusals(request, timeout=REFUSALS_TIMEOUT_SECONDS)

    def generated_tokens(self, reply: Any) -> int | None:
        return mapper.generated_tokens(reply)

    async def close(self) -> None:
        await self.channel.close()


def _predict_request(caller: Caller, call: PredictCall) -> compliance_pb2.ProxyPredictRequest:
    return compliance_pb2.ProxyPredictRequest(caller=mapper.caller(caller), request=mapper.predict_request(call))


def _chat_request(caller: Caller, call: PredictCall) -> compliance_pb2.ProxyChatRequest:
    return compliance_pb2.ProxyChatRequest(caller=mapper.caller(caller), request=mapper.chat_input(call))


class MonitorClient:
    unavailable_message = MONITOR_UNAVAILABLE

    def __init__(self, address: str, tls: MeshTls | None = None) -> None:
        self.channel: grpc.aio.Channel = open_channel(address, idempotent_services=["medai.monitor.v1.Monitor"],
                                                      tls=tls, server_name="monitor")
        self._stub = monitor_pb2_grpc.MonitorStub(self.channel)

    async def mesh_health(self, timeout: float) -> MeshHealth:
        async with translated_rpc_errors(self.unavailable_message):
            return mapper.mesh_health_from_pb(await self._stub.GetMeshHealth(empty_pb2.Empty(), timeout=timeout))

    async def mesh_metrics(self, timeout: float) -> str:
        async with translated_rpc_errors(self.unavailable_message):
            body = await self._stub.GetMeshMetrics(empty_pb2.Empty(), timeout=timeout)
        return body.data.decode()

    async def alerts(self, timeout: float) -> Any:
        async with translated_rpc_errors(self.unavailable_message):
            return await self._stub.ListAlerts(empty_pb2.Empty(), timeout=timeout)

    async def system_metrics(self, timeout: float) -> Any:
        async with translated_rpc_errors(self.unavailable_message):
            return await self._stub.GetSystemMetrics(empty_pb2.Empty(), timeout=timeout)

    async def close(self) -> None:
        await self.channel.close()
