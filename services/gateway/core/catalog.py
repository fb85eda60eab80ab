"""The model catalogue as compliance reports it, cached for a short TTL."""
from __future__ import annotations

import asyncio
import time

from libs.errors import ModelNotFound
from services.gateway.core.model import CatalogEntry
from services.gateway.core.ports import Compliance

CATALOG_TIMEOUT_SECONDS = 5.0
# A miss refreshes the catalogue at most this often (unknown ids must not hammer compliance).
MISS_REFRESH_SECONDS = 0.5


class ModelCatalog:
    """model_id -> entry; refreshed from compliance when older than ttl_seconds or on a miss."""

    def __init__(self, compliance: Compliance, ttl_seconds: float) -> None:
        self._compliance = compliance
        self._ttl = ttl_seconds
        self._entries: dict[str, CatalogEntry] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def entries(self) -> list[CatalogEntry]:
        if time.monotonic() - self._fetched_at > self._ttl:
            await self._refresh()
        return list(self._entries.values())

    def knows(self, model_id: str) -> bool:
        """Whether the last catalogue fetched lists model_id (no fetch)."""
        return model_id in self._entries

    async def get(self, model_id: str) -> CatalogEntry:
        """The model's entry; a miss refreshes once before answering ModelNotFound."""
        await self.entries()
        if model_id not in self._entries and time.monotonic() - self._fetched_at > MISS_REFRESH_SECONDS:
            await self._refresh()
        if model_id not in self._entries:
            raise ModelNotFound(model_id)
        return self._entries[model_id]

    async def _refresh(self) -> None:
        started = time.monotonic()
        async with self._lock:
            if self._fetched_at >= started:  # another caller refreshed while we waited
                return
            entries = await self._compliance.list_models(CATALOG_TIMEOUT_SECONDS)
            self._entries = {entry.model_id: entry for entry in entries}
            self._fetched_at = time.monotonic()
