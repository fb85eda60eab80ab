"""Which worker serves which model, learnt from each worker's catalogue and refreshed periodically."""
from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from libs.catalog import SERVING, UNAVAILABLE, ModelCard
from libs.errors import ModelNotFound
from services.compliance.core.ports import CatalogClient

log = logging.getLogger(__name__)

# A lookup of an unknown model refreshes the catalogues at most this often (a worker that just
# started is found without waiting for the next periodic refresh).
MISS_REFRESH_SECONDS = 1.0


def replica_target(addresses: Sequence[str]) -> str | None:
    """One gRPC target for several replicas given as IP literals of one family ("ipv4:a:p,b:q"): the
    worker channel balances over it (round robin) and retries idempotent calls on the next replica.
    None when an address is a host name."""
    families, parts = set(), []
    for address in addresses:
        host, _, port = address.rpartition(":")
        host = "127.0.0.1" if host == "localhost" else host.strip("[]")
        try:
            version = ipaddress.ip_address(host).version
        except ValueError:
            return None
        families.add(version)
        parts.append(f"[{host}]:{port}" if version == 6 else f"{host}:{port}")
    return f"ipv{families.pop()}:{','.join(parts)}" if len(families) == 1 else None


@dataclass(frozen=True)
class Route:
    """Where a model is served, and what its worker says about it."""

    address: str
    info: ModelCard
    reachable: bool

    @property
    def model_type(self) -> str:
        return self.info.model_type

    @property
    def listed_info(self) -> ModelCard:
        """The worker's description, status UNAVAILABLE while the worker cannot be reached."""
        return self.info if self.reachable else dataclasses.replace(self.info, status=UNAVAILABLE)


class ModelRegistry:
    """model_id -> (model type, worker address; several workers serving one model are its replicas).

    A worker that cannot be reached keeps the models it last reported (listed as UNAVAILABLE),
    so calls to them answer UNAVAILABLE rather than NOT_FOUND.
    """

    def __init__(self, addresses: Sequence[str], catalog: CatalogClient, *, refresh_seconds: float,
                 timeout_seconds: float, miss_refresh_seconds: float = MISS_REFRESH_SECONDS) -> None:
        self._addresses = list(dict.fromkeys(addresses))
        self._catalog = catalog
        self._refresh_seconds = refresh_seconds
        self._timeout = timeout_seconds
        self._miss_refresh_seconds = miss_refresh_seconds
        self._models: dict[str, dict[str, ModelCard]] = {address: {} for address in self._addresses}
        self._reachable: dict[str, bool | None] = dict.fromkeys(self._addresses)  # None: never asked
        self._last_refresh = float("-inf")
        self._refreshing: asyncio.Future[None] | None = None
        self._turns = itertools.count()

    async def refresh(self) -> None:
        """Ask every worker for its models, concurrently; joins a refresh already running; never raises."""
        if self._refreshing is None or self._refreshing.done():
            self._last_refresh = time.monotonic()
            self._refreshing = asyncio.ensure_future(
                asyncio.gather(*(self._refresh_worker(address) for address in self._addresses))
            )
        await asyncio.shield(self._refreshing)  # one waiter's cancellation must not cancel the others' refresh

    async def run(self) -> None:
        """Refresh forever (a background job; cancel to stop): every `refresh_seconds` once every
        worker answers and every model serves, faster while one is down or still warming up."""
        while True:
            await asyncio.sleep(self._refresh_seconds if self._settled else self._miss_refresh_seconds)
            await self.refresh()

    async def route(self, model_id: str) -> Route:
        """Where model_id is served; refreshes once (rate-limited) before answering ModelNotFound."""
        found = self._find(model_id)
        if found is None and (self._refresh_running or self._refresh_due):
            await self.refresh()
            found = self._find(model_id)
        if found is None:
            raise ModelNotFound(model_id)
        return found

    def models(self) -> list[ModelCard]:
        """Every known model once (a reachable worker's entry first), status UNAVAILABLE where unreachable."""
        routes: dict[str, Route] = {}
        for route in self._routes():
            routes.setdefault(route.info.model_id, route)
        return [route.listed_info for route in routes.values()]

    @property
    def _refresh_running(self) -> bool:
        return self._refreshing is not None and not self._refreshing.done()

    @property
    def _settled(self) -> bool:
        return all(self._reachable.values()) and all(
            info.status == SERVING for models in self._models.values() for info in models.values()
        )

    @property
    def _refresh_due(self) -> bool:
        return time.monotonic() - self._last_refresh >= self._miss_refresh_seconds

    def _find(self, model_id: str) -> Route | None:
        """The model's route; served by several workers, its address names every reachable replica."""
        routes = [route for route in self._routes() if route.info.model_id == model_id]
        if len(routes) <= 1:
            return routes[0] if routes else None
        replicas = [route for route in routes if route.reachable] or routes
        if len(replicas) == 1:
            return replicas[0]
        target = replica_target([route.address for route in replicas])
        if target is None:  # host names: take turns here (each name may still resolve to several pods)
            return replicas[next(self._turns) % len(replicas)]
        return dataclasses.replace(replicas[0], address=target)

    def _routes(self) -> list[Route]:
        routes = [
            Route(address, info, bool(self._reachable[address]))
            for address in self._addresses
            for info in self._models[address].values()
        ]
        return sorted(routes, key=lambda route: not route.reachable)  # stable: keeps address order

    async def _refresh_worker(self, address: str) -> None:
        try:
            models = await self._catalog.list_models(address, self._timeout)
        except Exception as error:  # a worker down or broken must not stop the others' refresh
            if self._reachable[address] is not False:
                log.warning("worker catalogue unavailable", extra={"worker": address, "error": type(error).__name__})
            self._reachable[address] = False
            return
        if self._reachable[address] is not True:
            log.info("worker catalogue loaded", extra={"worker": address, "models": len(models)})
        self._models[address] = {info.model_id: info for info in models}
        self._reachable[address] = True
