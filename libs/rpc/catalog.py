"""Protobuf <-> domain conversion of the model catalogue, and the ModelCatalog servicer of a worker."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import grpc

from libs.catalog import ModelCard, ModelHealthReport, ModelLimits, WorkerCatalog
from libs.rpc.timestamps import timestamp_from_pb, timestamp_to_pb
from medai.common.v1 import models_pb2, models_pb2_grpc

_CARD_SCALARS = tuple(f.name for f in dataclasses.fields(ModelCard) if f.name not in ("limits", "loaded_at"))
_LIMIT_FIELDS = tuple(f.name for f in dataclasses.fields(ModelLimits))


def model_card_to_pb(card: ModelCard) -> models_pb2.ModelInfo:
    return models_pb2.ModelInfo(
        **{name: getattr(card, name) for name in _CARD_SCALARS},
        limits=models_pb2.ModelLimits(**dataclasses.asdict(card.limits)),
        loaded_at=timestamp_to_pb(card.loaded_at),
    )


def model_card_from_pb(info: models_pb2.ModelInfo) -> ModelCard:
    return ModelCard(
        **{name: getattr(info, name) for name in _CARD_SCALARS},
        limits=ModelLimits(**{name: getattr(info.limits, name) for name in _LIMIT_FIELDS}),
        loaded_at=timestamp_from_pb(info, "loaded_at"),
    )


def list_models_to_pb(cards: Iterable[ModelCard]) -> models_pb2.ListModelsResponse:
    return models_pb2.ListModelsResponse(models=[model_card_to_pb(card) for card in cards])


def model_health_to_pb(report: ModelHealthReport) -> models_pb2.ModelHealth:
    return models_pb2.ModelHealth(
        model_id=report.model_id, status=report.status, requests_running=report.requests_running,
        requests_waiting=report.requests_waiting, checked_at=timestamp_to_pb(report.checked_at),
    )


def model_health_from_pb(health: models_pb2.ModelHealth) -> ModelHealthReport:
    return ModelHealthReport(
        model_id=health.model_id, status=health.status, requests_running=health.requests_running,
        requests_waiting=health.requests_waiting, checked_at=timestamp_from_pb(health, "checked_at"),
    )


class ModelCatalogServicer(models_pb2_grpc.ModelCatalogServicer):
    """medai.common.v1.ModelCatalog of a worker (generation, conversation, embedding)."""

    def __init__(self, catalog: WorkerCatalog) -> None:
        self._catalog = catalog

    async def ListModels(
        self, request: models_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ListModelsResponse:
        return list_models_to_pb(self._catalog.list_models(request.model_type))

    async def GetModelInfo(
        self, request: models_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ModelInfo:
        return model_card_to_pb(self._catalog.model_info(request.model_id))

    async def GetModelHealth(
        self, request: models_pb2.GetModelHealthRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.ModelHealth:
        return model_health_to_pb(self._catalog.model_health(request.model_id))
