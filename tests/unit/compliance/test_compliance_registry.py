"""ModelRegistry learns models from real worker catalogues over gRPC, and keeps them when a worker is down."""
from __future__ import annotations

import asyncio
import time

import pytest

from libs.errors import InvalidInput, ModelNotFound
from services.compliance.core.catalog import ModelCatalog
from services.compliance.core.registry import ModelRegistry
from services.compliance.workers import GrpcWorkers
from tests.support.ports import free_ports
from tests.support.spy_worker import CHAT_MODEL, GEN_MODEL, SpyState, running_spy, start_spy


@pytest.fixture
async def workers():
    clients = GrpcWorkers(reconnect_backoff_seconds=0.2)
    yield clients
    await clients.close()


def registry_for(addresses, workers, refresh_seconds=60.0) -> ModelRegistry:
    return ModelRegistry(addresses, workers, refresh_seconds=refresh_seconds, timeout_seconds=2.0)


async def until(condition, timeout=5.0):
    """Poll condition (a coroutine function) until it is true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


async def test_learns_models_and_types_from_a_worker(workers):
    async with running_spy() as spy:
        registry = registry_for([spy.address], workers)
        await registry.refresh()
        route = await registry.route(GEN_MODEL)
        assert (route.address, route.model_type, route.reachable) == (spy.address, "text-generation", True)
        assert route.info.model_version == "spy-1" and route.info.limits.max_new_tokens == 64
        assert (await registry.route(CHAT_MODEL)).model_type == "conversation"
        assert {info.model_id for info in registry.models()} == set(spy.state.models)
        with pytest.raises(ModelNotFound):
            await registry.route("no-such-model")


async def test_worker_down_at_start_is_found_by_the_periodic_refresh(workers):
    (port,) = free_ports(1)
    registry = registry_for([f"127.0.0.1:{port}"], workers, refresh_seconds=0.05)
    await registry.refresh()
    assert registry.models() == []
    refreshing = asyncio.create_task(registry.run())
    try:
        async with running_spy(port):
            async def learnt() -> bool:
                return any(info.model_id == GEN_MODEL for info in registry.models())

            await until(learnt)
    finally:
        refreshing.cancel()


async def test_known_model_of_a_down_worker_stays_known_as_unavailable(workers):
    spy = await start_spy()
    registry = registry_for([spy.address], workers)
    try:
        await registry.refresh()
    finally:
        await spy.stop()
    await registry.refresh()
    route = await registry.route(GEN_MODEL)
    assert route.reachable is False
    assert {info.status for info in registry.models()} == {"UNAVAILABLE"}
    health = await ModelCatalog(registry, workers, 1.0).model_health(GEN_MODEL, None)
    assert health.status == "UNAVAILABLE"


async def test_unknown_model_triggers_a_rate_limited_refresh(workers):
    async with running_spy() as spy:
        eager = ModelRegistry([spy.address], workers, refresh_seconds=60, timeout_seconds=2, miss_refresh_seconds=0)
        await eager.refresh()
        spy.state.models["late-model"] = "text-generation"
        assert (await eager.route("late-model")).model_type == "text-generation"

        lazy = ModelRegistry([spy.address], workers, refresh_seconds=60, timeout_seconds=2, miss_refresh_seconds=60)
        await lazy.refresh()
        asks = len(spy.state.requests("ListModels"))
        with pytest.raises(ModelNotFound):
            await lazy.route("never-there")
        assert len(spy.state.requests("ListModels")) == asks


async def test_a_lookup_during_a_refresh_waits_for_it(workers):
    async with running_spy() as spy:
        registry = ModelRegistry([spy.address], workers, refresh_seconds=60, timeout_seconds=2,
                                 miss_refresh_seconds=60)
        first = asyncio.create_task(registry.refresh())
        await asyncio.sleep(0)  # let the refresh start
        assert (await registry.route(GEN_MODEL)).model_type == "text-generation"
        await first
        assert len(spy.state.requests("ListModels")) == 1


async def test_a_reachable_worker_wins_for_a_model_served_twice(workers):
    async with running_spy() as first, running_spy(state=SpyState()) as second:
        registry = registry_for([first.address, second.address], workers)
        await registry.refresh()
        await first.stop()
        await registry.refresh()
        assert (await registry.route(GEN_MODEL)).address == second.address
        assert len([info for info in registry.models() if info.model_id == GEN_MODEL]) == 1


async def test_catalog_filters_by_type_and_refuses_unknown_types(workers):
    async with running_spy() as spy:
        registry = registry_for([spy.address], workers)
        await registry.refresh()
        catalog = ModelCatalog(registry, workers, 1.0)
        assert [info.model_id for info in catalog.list_models("conversation")] == [CHAT_MODEL]
        assert len(catalog.list_models()) == 3
        with pytest.raises(InvalidInput) as raised:
            catalog.list_models("chat")
        assert raised.value.field == "model_type"
        health = await catalog.model_health(GEN_MODEL, 5.0)
        assert (health.status, health.requests_running) == ("SERVING", 1)


async def test_a_warming_model_is_seen_serving_soon_not_after_the_long_interval(workers):
    async with running_spy() as spy:
        spy.state.status = "NOT_SERVING"
        registry = ModelRegistry([spy.address], workers, refresh_seconds=600.0, timeout_seconds=2.0,
                                 miss_refresh_seconds=0.05)
        await registry.refresh()
        assert {info.status for info in registry.models()} == {"NOT_SERVING"}
        refreshing = asyncio.create_task(registry.run())
        try:
            spy.state.status = "SERVING"

            async def serving() -> bool:
                return {info.status for info in registry.models()} == {"SERVING"}

            await until(serving)
        finally:
            refreshing.cancel()
