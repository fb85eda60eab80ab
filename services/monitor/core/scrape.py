"""Scrapes every service's metrics endpoint concurrently; a target that fails is skipped and counted."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import httpx
from prometheus_client.metrics_core import Metric

from services.monitor.core import exposition, gauges

log = logging.getLogger(__name__)


class MeshScraper:
    """Turns the targets' expositions into one, each series labelled with its service.

    An https target must present a certificate naming its service (the target's name is its identity);
    the client (its TLS context) is the caller's."""

    def __init__(self, targets: Mapping[str, str], client: httpx.AsyncClient, timeout_seconds: float) -> None:
        # Services without a metrics URL are not scraped.
        self._targets = {name: url for name, url in targets.items() if url}
        self._client = client
        self._timeout = timeout_seconds

    async def scrape(self) -> bytes:
        families = await self.families()
        return await asyncio.to_thread(exposition.render, families)

    async def families(self) -> list[Metric]:
        """Every target's families merged, each sample labelled with its service."""
        names = list(self._targets)
        results = await asyncio.gather(*(self._scrape_one(name) for name in names))
        families = {name: result for name, result in zip(names, results, strict=True) if result is not None}
        return exposition.merge(families)

    async def _scrape_one(self, name: str) -> list[Metric] | None:
        try:
            url = self._targets[name]
            extensions = {"sni_hostname": name} if url.startswith("https://") else None
            response = await self._client.get(url, timeout=self._timeout, extensions=extensions)
            response.raise_for_status()
            return await asyncio.to_thread(exposition.parse, response.text, name)
        except (httpx.HTTPError, ValueError) as error:
            log.warning("scrape of %s failed: %s", name, type(error).__name__)
            gauges.SCRAPE_ERRORS.labels(name).inc()
            return None
