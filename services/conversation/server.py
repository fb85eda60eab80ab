"""Conversation server assembly: `build_deps(settings)` and `create_server(settings, deps)`."""
from __future__ import annotations

from dataclasses import dataclass

import grpc

from libs.config import ConversationSettings
from libs.llm.engine import EngineConfig, LLMEngine
from libs.rpc.catalog import ModelCatalogServicer
from libs.rpc.health import HealthReporter
from libs.rpc.server import new_server
from libs.stores.redis_sessions import RedisSessionStore
from libs.stores.sessions import InMemorySessionStore, SessionStore
from medai.common.v1 import models_pb2, models_pb2_grpc
from medai.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from medai.generation.v1 import generation_pb2, generation_pb2_grpc
from services.conversation.core.conversation import ConversationCore
from services.conversation.servicer import ConversationServicer
from services.generation.core import PromptCompleter
from services.generation.servicer import GenerationServicer

# Generation too: stateless chats (the client sends the whole history, e.g. OpenAI chat completions).
SERVICE_NAMES = [
    conversation_pb2.DESCRIPTOR.services_by_name["Conversation"].full_name,
    generation_pb2.DESCRIPTOR.services_by_name["Generation"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["ModelCatalog"].full_name,
]


@dataclass
class ConversationDeps:
    core: ConversationCore
    health: HealthReporter
    stateless: PromptCompleter


def session_store(settings: ConversationSettings) -> SessionStore:
    """Redis when `APP_REDIS_URL` is set (shared by every replica, kept across restarts), else in-process."""
    if settings.app.redis_url:
        return RedisSessionStore.from_url(settings.app.redis_url, settings.session_ttl_seconds, settings.max_turns,
                                          settings.session_key_prefix)
    return InMemorySessionStore(settings.session_ttl_seconds, settings.max_turns, settings.max_sessions)


async def build_deps(settings: ConversationSettings) -> ConversationDeps:
    """Health NOT_SERVING and a core whose model is not loaded yet (`core.start` loads and warms it)."""
    health = HealthReporter(SERVICE_NAMES)
    await health.set_serving(False)
    engine = LLMEngine(EngineConfig.from_settings(settings))
    core = ConversationCore(settings, engine, session_store(settings), health)
    stateless = PromptCompleter(engine, core.catalog, max_input_chars=settings.serving.max_input_chars,
                                apply_chat_template=True)
    return ConversationDeps(core, health, stateless)


def create_server(settings: ConversationSettings, deps: ConversationDeps) -> tuple[grpc.aio.Server, int]:
    def register(server: grpc.aio.Server) -> None:
        conversation_pb2_grpc.add_ConversationServicer_to_server(ConversationServicer(deps.core), server)
        generation_pb2_grpc.add_GenerationServicer_to_server(GenerationServicer(deps.stateless), server)
        models_pb2_grpc.add_ModelCatalogServicer_to_server(ModelCatalogServicer(deps.core.catalog), server)

    return new_server(settings, deps.health, SERVICE_NAMES, register)
