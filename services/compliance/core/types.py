"""Domain objects of the compliance service (no protobuf here: `mapper.py` converts; catalogue: `libs.catalog`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from libs.validation import GenerationParams


@dataclass(frozen=True)
class Caller:
    """Who calls, as the gateway established it."""

    request_id: str
    principal_id: str = ""
    key_name: str = ""
    role: str = ""
    permissions: tuple[str, ...] = ()
    client_address: str = ""


@dataclass(frozen=True)
class RefusedCall:
    """A call the gateway refused (401, 403, 429), as it reported it; identifiers only, never content."""

    request_id: str
    action: str
    status_code: str
    client_address: str = ""
    principal_id: str = ""
    claimed_key_id: str = ""
    role: str = ""
    model_id: str = ""
    refused_at: datetime | None = None


@dataclass(frozen=True)
class PredictInput:
    """A public predict request; `inputs` is as the client sent it (validated by the core)."""

    model_id: str
    inputs: object
    params: GenerationParams = field(default_factory=GenerationParams)
    system_prompt: str | None = None
    normalize: bool | None = None
    truncate: bool | None = None
    user_id: str = ""
    session_id: str = ""
    purpose: str = ""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    generated_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.generated_tokens


@dataclass(frozen=True)
class PredictMetadata:
    model_type: str
    model_version: str = ""
    tokens_generated: int = 0
    prompt_tokens: int = 0
    finish_reason: str = ""
    cached: bool = False
    phi_entities_redacted: int = 0
    truncated_inputs: int = 0
    session_id: str = ""


Outputs = str | list[str] | list[list[float]]


@dataclass(frozen=True)
class PredictResult:
    request_id: str
    model_id: str
    outputs: Outputs
    processing_time: float
    timestamp: datetime
    metadata: PredictMetadata


@dataclass(frozen=True)
class StreamChunk:
    """One event of a public token stream; the last has finish_reason and usage."""

    request_id: str
    model_id: str
    index: int
    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    model_version: str = ""
    session_id: str = ""


@dataclass(frozen=True)
class DetectedEntity:
    """A PHI span found in a text: character offsets in the original."""

    entity_type: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Redaction:
    """A text with its PHI replaced by placeholders, and the spans that were replaced."""

    text: str
    entities: tuple[DetectedEntity, ...] = ()


# Worker calls, in domain terms (the gRPC clients in `workers.py` translate them).


@dataclass(frozen=True)
class GenerateCall:
    request_id: str
    model_id: str
    prompt: str
    params: GenerationParams


@dataclass(frozen=True)
class Generated:
    text: str
    finish_reason: str
    usage: Usage
    model_version: str = ""


@dataclass(frozen=True)
class GeneratedChunk:
    index: int
    text: str
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class EmbedCall:
    request_id: str
    model_id: str
    inputs: tuple[str, ...]
    normalize: bool | None = None
    truncate: bool | None = None


@dataclass(frozen=True)
class Embedded:
    embeddings: list[list[float]]
    prompt_tokens: int = 0
    truncated_inputs: int = 0
    model_version: str = ""


@dataclass(frozen=True)
class ChatCall:
    request_id: str
    model_id: str
    session_id: str
    owner: str
    message: str
    params: GenerationParams
    system_prompt: str | None = None


@dataclass(frozen=True)
class ChatReply:
    session_id: str
    reply: Generated
    turns: int = 0


@dataclass(frozen=True)
class ChatChunk:
    session_id: str
    chunk: GeneratedChunk
