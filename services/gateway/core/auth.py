"""Authentication (API key -> principal, briefly cached) and authorisation (permissions as data)."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from libs.errors import PermissionDenied, StoreUnavailable, Unauthenticated
from libs.security.api_keys import split_key
from libs.security.roles import MODEL_TYPE_PERMISSION, Permission, permissions_of
from services.gateway.core.model import Principal, RateLimits
from services.gateway.core.ports import KeyLookup

log = logging.getLogger(__name__)

BEARER = "bearer "
_CACHE_LIMIT = 10_000
MISSING_KEY_MESSAGE = "missing API key: send 'Authorization: Bearer <key>'"


class KeyRefused(Unauthenticated):
    """Unauthenticated, with the id part of the key the client sent (for the audit trail), if any."""

    def __init__(self, message: str | None = None, *, claimed_key_id: str = "") -> None:
        super().__init__(message)
        self.claimed_key_id = claimed_key_id


@dataclass(frozen=True)
class KeyCachePolicy:
    """How long an answer of the key store is trusted: fresh for `ttl_seconds` (a revoked key is refused
    within that time), and, while the store does not answer, still used for up to `stale_seconds`
    (known keys keep working, known-bad ones stay refused). After a store failure, calls with a known
    key are answered at once from what was known while the store is asked again in the background,
    at most every `retry_seconds`; an unknown key then waits for the store (UNAVAILABLE if it fails)."""

    ttl_seconds: float = 1.0
    stale_seconds: float = 300.0
    retry_seconds: float = 1.0


@dataclass(frozen=True)
class _Answer:
    principal: Principal | None
    looked_up_at: float


class Authenticator:
    """Resolves `Authorization: Bearer <key>` to a principal (cache keyed by a digest, never the key)."""

    def __init__(self, keys: KeyLookup, policy: KeyCachePolicy,
                 role_limits: Callable[[str], RateLimits] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self._policy = policy
        self._role_limits = role_limits or (lambda role: RateLimits())
        self._clock = clock
        self._cache: OrderedDict[bytes, _Answer] = OrderedDict()
        self._store_down = False
        self._store_down_until = float("-inf")
        self._probe: asyncio.Future[None] | None = None

    async def authenticate(self, authorization: str | None) -> Principal:
        plaintext = _bearer_token(authorization)
        principal = await self._principal(plaintext)
        if principal is None:
            parts = split_key(plaintext)
            raise KeyRefused(claimed_key_id=parts[0] if parts else "")
        return principal

    async def _principal(self, plaintext: str) -> Principal | None:
        digest = hashlib.sha256(plaintext.encode()).digest()
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and now - cached.looked_up_at < self._policy.ttl_seconds:
            return cached.principal
        usable = cached is not None and now - cached.looked_up_at < self._policy.stale_seconds
        if usable and self._store_down:
            # The store failed lately: answer from what we knew, and ask it again in the background
            # (at most one question at a time, every retry_seconds), so no call waits on a dead database.
            if now >= self._store_down_until and self._probe is None:
                self._probe = asyncio.ensure_future(self._probe_store(plaintext, digest))
            return cached.principal
        try:
            return await self._looked_up(plaintext, digest)
        except StoreUnavailable:
            if not usable:
                raise
            log.warning("API key store unavailable: using the key's last known state")
            return cached.principal

    async def _looked_up(self, plaintext: str, digest: bytes) -> Principal | None:
        """The store's answer, remembered; a store failure opens the circuit for retry_seconds."""
        try:
            principal = await self._lookup(plaintext)
        except StoreUnavailable:
            self._store_down = True
            self._store_down_until = self._clock() + self._policy.retry_seconds
            raise
        self._store_down = False
        self._remember(digest, _Answer(principal, self._clock()))
        return principal

    async def _probe_store(self, plaintext: str, digest: bytes) -> None:
        try:
            with contextlib.suppress(StoreUnavailable):
                await self._looked_up(plaintext, digest)
        finally:
            self._probe = None

    async def _lookup(self, plaintext: str) -> Principal | None:
        key = await self._keys.authenticate(plaintext)
        if key is None:
            return None
        role_default = self._role_limits(key.role)
        limits = RateLimits(
            key.limits.requests_per_minute or role_default.requests_per_minute,
            key.limits.tokens_per_minute or role_default.tokens_per_minute,
        )
        return Principal(key.key_id, key.name, key.role, permissions_of(key.role), key.models, limits)

    def _remember(self, digest: bytes, answer: _Answer) -> None:
        if self._policy.ttl_seconds <= 0 and self._policy.stale_seconds <= 0:
            return
        self._cache[digest] = answer
        self._cache.move_to_end(digest)
        while len(self._cache) > _CACHE_LIMIT:
            self._cache.popitem(last=False)


def _bearer_token(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith(BEARER):
        raise KeyRefused(MISSING_KEY_MESSAGE)
    token = authorization[len(BEARER):].strip()
    if not token:
        raise KeyRefused(MISSING_KEY_MESSAGE)
    return token


def require(principal: Principal, *permissions: Permission) -> None:
    """Raise PermissionDenied naming the first permission the principal lacks."""
    for permission in permissions:
        if permission not in principal.permissions:
            raise PermissionDenied(f"role '{principal.role}' lacks permission '{permission}'")


def require_model_access(principal: Principal, model_id: str) -> None:
    """The key's model allow-list admits this model."""
    if not principal.may_use(model_id):
        raise PermissionDenied(f"this API key may not use model '{model_id}'")


def require_model(principal: Principal, model_id: str, model_type: str, *route_permissions: Permission) -> None:
    """Route permissions, the model type's permission, and the key's model allow-list."""
    type_permission = MODEL_TYPE_PERMISSION.get(model_type)
    if type_permission is None:
        raise PermissionDenied(f"model type '{model_type}' is not served to API keys")
    require(principal, *route_permissions, type_permission)
    require_model_access(principal, model_id)
