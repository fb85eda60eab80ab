"""What the gateway core needs from the services behind it (implemented in `clients.py`)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from libs.stores.keys import ApiKey
from libs.stores.ratelimit import Decision, Limit
from services.gateway.core.model import Caller, CatalogEntry, MeshHealth, PredictCall, Refusal


class KeyLookup(Protocol):
    async def authenticate(self, plaintext: str) -> ApiKey | None: ...


class RateLimiter(Protocol):
    """A rate-limit bucket store (`libs.stores.ratelimit`)."""

    async def acquire(self, key: str, limit: Limit, cost: float = 1.0) -> Decision: ...

    async def charge(self, key: str, limit: Limit, cost: float) -> None: ...

    async def close(self) -> None: ...


class Compliance(Protocol):
    """The compliance proxy. Replies are opaque to the core: the servicer returns them as they are."""

    async def list_models(self, timeout: float | None) -> list[CatalogEntry]: ...

    async def model_health(self, model_id: str, timeout: float | None) -> Any: ...

    async def predict(self, caller: Caller, call: PredictCall, timeout: float | None) -> Any: ...

    def predict_stream(self, caller: Caller, call: PredictCall, timeout: float | None) -> AsyncIterator[Any]: ...

    async def deidentify(self, caller: Caller, text: str, timeout: float | None) -> Any: ...

    async def delete_session(self, caller: Caller, model_id: str, session_id: str, timeout: float | None) -> Any: ...

    async def list_audit_records(self, caller: Caller, query: Any, timeout: float | None) -> Any: ...

    async def verify_audit(self, caller: Caller, timeout: float | None) -> Any: ...

    def generated_tokens(self, reply: Any) -> int | None:
        """Tokens a predict answer or stream chunk reports as generated (0 for a cached answer);
        None for a stream chunk that carries no usage (all but the last)."""


class Monitor(Protocol):
    async def mesh_health(self, timeout: float) -> MeshHealth: ...

    async def mesh_metrics(self, timeout: float) -> str: ...

    async def alerts(self, timeout: float) -> Any:
        """Pending and firing alerts, and their history (opaque to the core)."""

    async def system_metrics(self, timeout: float) -> Any:
        """The monitor's host reading (opaque to the core)."""


class RefusalLog(Protocol):
    """Where refused calls go for the audit trail (never blocks the call it describes)."""

    def record(self, refusal: Refusal) -> None: ...

    async def close(self) -> None: ...
