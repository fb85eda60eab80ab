"""Generation server assembly: `build_deps(settings)` and `create_server(settings, deps)`."""
from __future__ import annotations

from dataclasses import dataclass

import grpc

from libs.config import GenerationSettings
from libs.llm.engine import EngineConfig, LLMEngine
from libs.rpc.catalog import ModelCatalogServicer
from libs.rpc.health import HealthReporter
from libs.rpc.server import new_server
from medai.common.v1 import models_pb2, models_pb2_grpc
from medai.generation.v1 import generation_pb2, generation_pb2_grpc
from services.generation.core import GenerationCore
from services.generation.servicer import GenerationServicer

SERVICE_NAMES = [
    generation_pb2.DESCRIPTOR.services_by_name["Generation"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["ModelCatalog"].full_name,
]


@dataclass
class GenerationDeps:
    core: GenerationCore
    health: HealthReporter


async def build_deps(settings: GenerationSettings) -> GenerationDeps:
    """Health NOT_SERVING and a core whose model is not loaded yet (`core.start` loads and warms it)."""
    health = HealthReporter(SERVICE_NAMES)
    await health.set_serving(False)
    return GenerationDeps(GenerationCore(settings, LLMEngine(EngineConfig.from_settings(settings)), health), health)


def create_server(settings: GenerationSettings, deps: GenerationDeps) -> tuple[grpc.aio.Server, int]:
    def register(server: grpc.aio.Server) -> None:
        generation_pb2_grpc.add_GenerationServicer_to_server(GenerationServicer(deps.core), server)
        models_pb2_grpc.add_ModelCatalogServicer_to_server(ModelCatalogServicer(deps.core.catalog), server)

    return new_server(settings, deps.health, SERVICE_NAMES, register)
