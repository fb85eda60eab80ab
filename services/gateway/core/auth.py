"""Authentication (API key -> principal, briefly cached) and authorisation (permissions as data)."""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict

from libs.errors import PermissionDenied, Unauthenticated
from libs.security.roles import MODEL_TYPE_PERMISSION, Permission, permissions_of
from services.gateway.core.model import Principal
from services.gateway.core.ports import KeyLookup

BEARER = "bearer "
_CACHE_LIMIT = 10_000


class Authenticator:
    """Resolves `Authorization: Bearer <key>` to a principal.

    Lookups are cached for `ttl_seconds` (keyed by a digest of the key, never the key itself), so
    a revoked or expired key is refused within that time on every replica.
    """

    def __init__(self, keys: KeyLookup, ttl_seconds: float) -> None:
        self._keys = keys
        self._ttl = ttl_seconds
        self._cache: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Principal:
        plaintext = _bearer_token(authorization)
        digest = hashlib.sha256(plaintext.encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._lookup(plaintext)
            self._remember(digest, now + self._ttl, principal)
        if principal is None:
            raise Unauthenticated()
        return principal

    async def _lookup(self, plaintext: str) -> Principal | None:
        key = await self._keys.authenticate(plaintext)
        if key is None:
            return None
        return Principal(key.key_id, key.name, key.role, permissions_of(key.role), key.models)

    def _remember(self, digest: bytes, expires: float, principal: Principal | None) -> None:
        if self._ttl <= 0:
            return
        self._cache[digest] = (expires, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > _CACHE_LIMIT:
            self._cache.popitem(last=False)


def _bearer_token(authorization: str | None) -> str:
    if not authorization or not authorization.lower().startswith(BEARER):
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    token = authorization[len(BEARER):].strip()
    if not token:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
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
