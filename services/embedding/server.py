"""Embedding server assembly: `build_deps(settings)` and `create_server(settings, deps)`."""
from __future__ import annotations

from dataclasses import dataclass

import grpc

from libs.config import EmbeddingSettings
from libs.rpc.catalog import ModelCatalogServicer
from libs.rpc.health import HealthReporter
from libs.rpc.server import new_server
from medai.common.v1 import models_pb2, models_pb2_grpc
from medai.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from services.embedding.core.embedder import Embedder, EmbedderConfig
from services.embedding.servicer import EmbeddingServicer

SERVICE_NAMES = [
    embedding_pb2.DESCRIPTOR.services_by_name["Embedding"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["ModelCatalog"].full_name,
]


@dataclass
class EmbeddingDeps:
    embedder: Embedder
    health: HealthReporter


async def build_deps(settings: EmbeddingSettings) -> EmbeddingDeps:
    """Health NOT_SERVING and an embedder whose model is not loaded yet (`embedder.start` loads it)."""
    health = HealthReporter(SERVICE_NAMES)
    await health.set_serving(False)
    return EmbeddingDeps(Embedder(EmbedderConfig.from_settings(settings), health), health)


def create_server(settings: EmbeddingSettings, deps: EmbeddingDeps) -> tuple[grpc.aio.Server, int]:
    def register(server: grpc.aio.Server) -> None:
        embedding_pb2_grpc.add_EmbeddingServicer_to_server(EmbeddingServicer(deps.embedder), server)
        models_pb2_grpc.add_ModelCatalogServicer_to_server(ModelCatalogServicer(deps.embedder), server)

    return new_server(settings, deps.health, SERVICE_NAMES, register)
