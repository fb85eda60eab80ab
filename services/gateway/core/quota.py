"""Per-API-key rate limits: requests per minute (charged on arrival) and generated tokens per minute
(checked before a generation, charged with what it generated).

Each key carries its own limits (set with `medai keys create/update --rpm --tpm`, else its role's
default from the settings); a key with neither is not rate-limited (admission control still
protects the mesh). A minute's worth may be used at once, like a per-minute window."""
from __future__ import annotations

from libs.errors import Overloaded
from libs.stores.ratelimit import Limit
from services.gateway.core.model import Principal
from services.gateway.core.ports import RateLimiter
from services.gateway.metrics import RATE_LIMITED


class Quotas:
    def __init__(self, store: RateLimiter) -> None:
        self._store = store

    async def admit_request(self, principal: Principal) -> None:
        """Charge one request to the key; Overloaded (with the wait) when its budget is spent."""
        limit = _per_minute(principal.limits.requests_per_minute)
        if limit is not None:
            decision = await self._store.acquire(f"req:{principal.key_id}", limit)
            if not decision.allowed:
                _refuse("requests", decision.retry_after_seconds)

    async def check_tokens(self, principal: Principal) -> None:
        """Overloaded while the key's generated tokens exceed its per-minute budget."""
        limit = _per_minute(principal.limits.tokens_per_minute)
        if limit is not None:
            decision = await self._store.acquire(f"tok:{principal.key_id}", limit, cost=0)
            if not decision.allowed:
                _refuse("generated tokens", decision.retry_after_seconds)

    async def charge_tokens(self, principal: Principal, tokens: int) -> None:
        limit = _per_minute(principal.limits.tokens_per_minute)
        if limit is not None and tokens > 0:
            await self._store.charge(f"tok:{principal.key_id}", limit, tokens)

    async def close(self) -> None:
        await self._store.close()


def _per_minute(units: int | None) -> Limit | None:
    return Limit(units, units) if units else None


def _refuse(kind: str, retry_after: float) -> None:
    RATE_LIMITED.labels(kind.split()[-1]).inc()
    raise Overloaded(f"rate limit of {kind} per minute for this API key exceeded, retry later",
                     retry_after_seconds=retry_after)
