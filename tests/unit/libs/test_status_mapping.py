"""Domain errors become the right gRPC status through a real server, and come back as the same errors."""
from __future__ import annotations

import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.config import GenerationSettings
from libs.errors import (
    Cancelled,
    DeadlineExceeded,
    InvalidInput,
    MedaiError,
    ModelNotFound,
    NotReady,
    Overloaded,
    PermissionDenied,
    Unauthenticated,
)
from libs.rpc.channels import open_channel
from libs.rpc.health import HealthReporter
from libs.rpc.server import new_server
from libs.rpc.status import translated_rpc_errors
from medai.common.v1 import models_pb2, models_pb2_grpc

SECRET = "Jane Roe 123-45-6789"
CASES = {
    "invalid": (InvalidInput("must be between 0 and 2", field="parameters.temperature"),
                grpc.StatusCode.INVALID_ARGUMENT),
    "unauthenticated": (Unauthenticated(), grpc.StatusCode.UNAUTHENTICATED),
    "denied": (PermissionDenied("role 'auditor' lacks permission 'predict'"), grpc.StatusCode.PERMISSION_DENIED),
    "missing-model": (ModelNotFound("m1"), grpc.StatusCode.NOT_FOUND),
    "not-ready": (NotReady("model loading"), grpc.StatusCode.UNAVAILABLE),
    "overloaded": (Overloaded("queue full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    "deadline": (DeadlineExceeded(), grpc.StatusCode.DEADLINE_EXCEEDED),
    "cancelled": (Cancelled(), grpc.StatusCode.CANCELLED),
    "unexpected": (KeyError(SECRET), grpc.StatusCode.INTERNAL),
    "unmapped-domain": (MedaiError(), grpc.StatusCode.INTERNAL),
}


class RaisingCatalog(models_pb2_grpc.ModelCatalogServicer):
    """Raises the error named by the request's model_type, unary and streaming alike."""

    async def ListModels(self, request, context):
        raise CASES[request.model_type][0]

    async def GetModelInfo(self, request, context):
        return models_pb2.ModelInfo(model_id=request.model_id)


@pytest.fixture
async def served():
    """A real server with the mesh's interceptors around RaisingCatalog: (its health reporter, a channel)."""
    settings = GenerationSettings(host="127.0.0.1", port=0, metrics_port=0)
    health = HealthReporter(["medai.common.v1.ModelCatalog"])
    server, port = new_server(settings, health, ["medai.common.v1.ModelCatalog"],
                              lambda s: models_pb2_grpc.add_ModelCatalogServicer_to_server(RaisingCatalog(), s))
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    yield health, channel
    await channel.close()
    await server.stop(0)


@pytest.fixture
def catalog_stub(served):
    return models_pb2_grpc.ModelCatalogStub(served[1])


@pytest.mark.parametrize("case", sorted(CASES))
async def test_each_error_maps_to_its_status(catalog_stub, case, caplog):
    error, code = CASES[case]
    with caplog.at_level(logging.ERROR), pytest.raises(grpc.aio.AioRpcError) as raised:
        await catalog_stub.ListModels(models_pb2.ListModelsRequest(model_type=case))
    assert raised.value.code() == code
    if code == grpc.StatusCode.INTERNAL:
        assert raised.value.details() == "internal error"
    else:
        assert raised.value.details() == error.message
    assert SECRET not in raised.value.details()
    assert SECRET not in caplog.text


async def test_downstream_status_comes_back_as_the_domain_error(catalog_stub):
    with pytest.raises(InvalidInput) as raised:
        async with translated_rpc_errors():
            await catalog_stub.ListModels(models_pb2.ListModelsRequest(model_type="invalid"))
    assert "parameters.temperature" in raised.value.message
    with pytest.raises(Overloaded):
        async with translated_rpc_errors():
            await catalog_stub.ListModels(models_pb2.ListModelsRequest(model_type="overloaded"))


async def test_unreachable_service_is_not_ready():
    channel = open_channel("127.0.0.1:1")
    try:
        with pytest.raises(NotReady):
            async with translated_rpc_errors():
                await models_pb2_grpc.ModelCatalogStub(channel).ListModels(models_pb2.ListModelsRequest(), timeout=5)
    finally:
        await channel.close()


async def test_health_is_not_serving_until_the_service_says_so(served):
    health, channel = served
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", "medai.common.v1.ModelCatalog"):
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await health.set_serving(True)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    await health.shutdown()
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_health_watch_streams_status_changes_through_the_mesh_interceptors(served):
    health, channel = served
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
    first = await watch.read()
    await health.set_serving(True)
    second = await watch.read()
    watch.cancel()
    assert (first.status, second.status) == (health_pb2.HealthCheckResponse.NOT_SERVING,
                                             health_pb2.HealthCheckResponse.SERVING)


async def test_every_overload_carries_a_retry_hint(catalog_stub):
    """Overloaded("queue full") names no wait: clients still get one (1 s), as gRPC metadata (and, through
    Envoy, as the Retry-After header)."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await catalog_stub.ListModels(models_pb2.ListModelsRequest(model_type="overloaded"))
    assert dict(raised.value.trailing_metadata())["retry-after"] == "1"
    with pytest.raises(Overloaded) as translated:
        async with translated_rpc_errors():
            await catalog_stub.ListModels(models_pb2.ListModelsRequest(model_type="overloaded"))
    assert translated.value.retry_after_seconds == 1 and translated.value.reported_by_peer


async def test_a_transport_failure_gets_the_callers_own_message_never_an_address():
    channel = open_channel("127.0.0.1:1")
    try:
        with pytest.raises(NotReady) as raised:
            async with translated_rpc_errors("compliance service unavailable"):
                await models_pb2_grpc.ModelCatalogStub(channel).ListModels(models_pb2.ListModelsRequest(), timeout=5)
    finally:
        await channel.close()
    assert raised.value.message == "compliance service unavailable" and not raised.value.reported_by_peer


async def test_a_reported_unavailable_keeps_the_services_own_message(catalog_stub):
    with pytest.raises(NotReady) as raised:
        async with translated_rpc_errors("compliance service unavailable"):
            await catalog_stub.ListModels(models_pb2.ListModelsRequest(model_type="not-ready"))
    assert raised.value.message == "model loading"
