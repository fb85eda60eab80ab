"""Per-API-key rate limits: requests per minute (charged on arrival) and generated tokens per minute
(checked before a generation, charged with what it generated)."""
from __future__ import annotations

from dataclasses import dataclass

from libs.errors import Overloaded
from libs.stores.ratelimit import Limit
from services.gateway.core.model import Principal
from services.gateway.core.ports import RateLimiter
from services.gateway.metrics import RATE_LIMITED


@dataclass(frozen=True)
class QuotaSettings:
    """0 per minute: that limit is off."""

    requests_per_minute: float
    burst: int
    tokens_per_minute: float


class Quotas:
    def __init__(self, store: RateLimiter, settings: QuotaSettings) -> None:
        self._store = store
        self._requests = Limit(settings.requests_per_minute, settings.burst) if settings.requests_per_minute else None
        tokens = settings.tokens_per_minute
        self._tokens = Limit(tokens, tokens) if tokens else None

    async def admit_request(self, principal: Principal) -> None:
        """Charge one request to the key; Overloaded (with the wait) when its budget is spent."""
        if self._requests is not None:
            decision = await self._store.acquire(f"req:{principal.key_id}", self._requests)
            if not decision.allowed:
                _refuse("requests", decision.retry_after_seconds)

    async def check_tokens(self, principal: Principal) -> None:
        """Overloaded while the key's generated tokens exceed its per-minute budget."""
        if self._tokens is not None:
            decision = await self._store.acquire(f"tok:{principal.key_id}", self._tokens, cost=0)
            if not decision.allowed:
                _refuse("generated tokens", decision.retry_after_seconds)

    async def charge_tokens(self, principal: Principal, tokens: int) -> None:
        if self._tokens is not None and tokens > 0:
            await self._store.charge(f"tok:{principal.key_id}", self._tokens, tokens)

    async def close(self) -> None:
        await self._store.close()


def _refuse(kind: str, retry_after: float) -> None:
    RATE_LIMITED.labels(kind.split()[-1]).inc()
    raise Overloaded(f"rate limit of {kind} per minute for this API key exceeded, retry later",
                     retry_after_seconds=retry_after)
