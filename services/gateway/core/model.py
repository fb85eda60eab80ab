"""Domain values the gateway works with."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from libs.catalog import ModelLimits
from libs.security.roles import Permission
from libs.validation import GenerationParams


@dataclass(frozen=True)
class RateLimits:
    """Units per minute a key may use; None: not limited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the API key's identity, what it may do and how much."""

    key_id: str
    key_name: str
    role: str
    permissions: frozenset[Permission]
    models: tuple[str, ...] = ()  # empty: any model
    limits: RateLimits = RateLimits()

    def may_use(self, model_id: str) -> bool:
        return not self.models or model_id in self.models


@dataclass(frozen=True)
class CallMetadata:
    """What the transport tells the core about a call (never the body)."""

    authorization: str | None
    request_id: str
    client_address: str
    deadline_seconds: float | None  # time the client left us; None: no deadline


@dataclass(frozen=True)
class Caller:
    """Who is calling, forwarded with every downstream request."""

    request_id: str
    principal: Principal
    client_address: str


@dataclass(frozen=True)
class PredictCall:
    """A predict request after decoding (inputs as Python values, parameters typed)."""

    model_id: str
    inputs: Any
    params: GenerationParams
    system_prompt: str | None = None
    normalize: bool | None = None
    truncate: bool | None = None
    user_id: str = ""
    session_id: str = ""
    purpose: str = ""
    request_bytes: int = 0  # size of the request message as received


@dataclass(frozen=True)
class CatalogEntry:
    """One model as compliance reports it: the fields policy needs, plus the record to return."""

    model_id: str
    model_type: str
    record: Any = field(compare=False, repr=False)
    limits: ModelLimits = field(default_factory=ModelLimits)  # what the model accepts per request


@dataclass(frozen=True)
class ServiceStatus:
    status: str
    since: float | None = None  # unix seconds


@dataclass(frozen=True)
class MeshHealth:
    status: str
    services: dict[str, ServiceStatus]
    not_serving: list[str] = field(default_factory=list)  # why status is not SERVING


@dataclass(frozen=True)
class Refusal:
    """A call the gateway refused itself (401, 403, 429): who, what, why; never what was sent."""

    request_id: str
    action: str
    status_code: str
    client_address: str
    principal_id: str = ""
    claimed_key_id: str = ""
    role: str = ""
    model_id: str = ""
