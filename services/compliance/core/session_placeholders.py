"""Placeholder maps of conversation sessions, encrypted at rest, so that "[PERSON_1]" stays the same
person across turns (and can be re-identified for callers allowed to).

The map (PHI) is sealed with AES-256-GCM under a key derived (HKDF) from the server pepper, with
the session id and owner as associated data; the store keeps only ciphertext with a TTL. Stores:
Redis (`APP_REDIS_URL`) or in-process, behind the small `SealedStore` interface.
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from libs.stores.redis_client import redis_unavailable_as
from services.compliance.core.deidentify import PlaceholderMap

NONCE_BYTES = 12
# Conversation sessions' placeholder maps live beside their turns: to a client, one session store.
STORE_NAME = "session store"


class SealedStore(Protocol):
    """Opaque bytes by key, with a TTL (seconds)."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


class InMemorySealedStore:
    """In-process, least recently used dropped first past `max_entries`."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._max = max_entries

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        self._entries.move_to_end(key)
        return entry[0]

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        self._entries[key] = (value, time.monotonic() + ttl_seconds)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def close(self) -> None:
        self._entries.clear()


class RedisSealedStore:
    """Redis (redis-py asyncio): SET with EX. A Redis that does not answer: StoreUnavailable."""

    def __init__(self, client, prefix: str = "medai:phimap:") -> None:
        self._client = client
        self._prefix = prefix

    async def get(self, key: str) -> bytes | None:
        async with redis_unavailable_as(STORE_NAME):
            return await self._client.get(self._prefix + key)

    async def set(self, key: str, value: bytes, ttl_seconds: int) -> None:
        async with redis_unavailable_as(STORE_NAME):
            await self._client.set(self._prefix + key, value, ex=ttl_seconds)

    async def delete(self, key: str) -> None:
        async with redis_unavailable_as(STORE_NAME):
            await self._client.delete(self._prefix + key)

    async def close(self) -> None:
        await self._client.aclose()


class SessionPlaceholders:
    """Load, save and forget the encrypted placeholder map of an owner's session."""

    def __init__(self, store: SealedStore, pepper: bytes, ttl_seconds: int) -> None:
        self._store = store
        self._ttl = ttl_seconds
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"medai session placeholders").derive(pepper)
        self._aead = AESGCM(key)

    @staticmethod
    def _key(session_id: str, owner: str) -> str:
        import hashlib

        return hashlib.sha256(f"{owner}\x00{session_id}".encode()).hexdigest()

    async def load(self, session_id: str, owner: str) -> PlaceholderMap:
        """The session's map, or a new one (unknown, expired, or not decryptable for this owner)."""
        sealed = await self._store.get(self._key(session_id, owner)) if session_id else None
        if not sealed:
            return PlaceholderMap()
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(session_id, owner))
        except Exception:
            return PlaceholderMap()
        return PlaceholderMap.from_json(plain.decode())

    async def save(self, session_id: str, owner: str, placeholders: PlaceholderMap) -> None:
        if not session_id:
            return
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, placeholders.to_json().encode(), _aad(session_id, owner))
        await self._store.set(self._key(session_id, owner), sealed, self._ttl)

    async def forget(self, session_id: str, owner: str) -> None:
        await self._store.delete(self._key(session_id, owner))

    async def close(self) -> None:
        await self._store.close()


def _aad(session_id: str, owner: str) -> bytes:
    return f"medai-session:{owner}:{session_id}".encode()
