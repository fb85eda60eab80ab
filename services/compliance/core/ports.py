"""What the core needs from the outside world, as protocols (gRPC implementations: `workers.py`).

Every call takes the worker's address and the caller's remaining deadline in seconds
(None: no deadline). Implementations raise `libs.errors` classes, never transport errors.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from libs.catalog import ModelCard, ModelHealthReport
from services.compliance.core.types import (
    ChatCall,
    ChatChunk,
    ChatReply,
    EmbedCall,
    Embedded,
    GenerateCall,
    Generated,
    GeneratedChunk,
)


class CatalogClient(Protocol):
    async def list_models(self, address: str, timeout: float | None) -> Sequence[ModelCard]: ...

    async def model_health(self, address: str, model_id: str, timeout: float | None) -> ModelHealthReport: ...


class GenerationClient(Protocol):
    async def generate(self, address: str, call: GenerateCall, timeout: float | None) -> Generated: ...

    def generate_stream(
        self, address: str, call: GenerateCall, timeout: float | None
    ) -> AsyncIterator[GeneratedChunk]: ...


class EmbeddingClient(Protocol):
    async def embed(self, address: str, call: EmbedCall, timeout: float | None) -> Embedded: ...


class ConversationClient(Protocol):
    async def chat(self, address: str, call: ChatCall, timeout: float | None) -> ChatReply: ...

    def chat_stream(self, address: str, call: ChatCall, timeout: float | None) -> AsyncIterator[ChatChunk]: ...

    async def delete_session(self, address: str, session_id: str, owner: str, timeout: float | None) -> bool: ...


class WorkerClients(CatalogClient, GenerationClient, EmbeddingClient, ConversationClient, Protocol):
    """Every worker API the proxy speaks."""
