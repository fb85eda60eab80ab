"""The monitor through a real gRPC server, watching real health servers and scraping real endpoints."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
import httpx
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2_grpc
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from libs.config import AppSettings, MonitoredService, MonitorSettings
from libs.rpc.health import HealthReporter
from medai.monitor.v1 import monitor_pb2, monitor_pb2_grpc
from services.monitor.core.gpu import NvmlGpus
from services.monitor.core.monitor import build_core
from services.monitor.server import SERVICE_NAMES, MonitorDeps, create_server
from services.monitor.watcher import build_watchers, watch_all
from tests.support.http_endpoints import metrics_endpoint, refusing_port
from tests.support.webhooks import webhook_receiver

T = TypeVar("T")
EMPTY = empty_pb2.Empty()
WORKER_DOWN = "model worker {} is not serving: its models answer 503"


class HealthTarget:
    """A real gRPC server on 127.0.0.1 whose grpc.health.v1 status the test flips."""

    def __init__(self) -> None:
        self.reporter = HealthReporter([])
        self.server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (on the same port again after a stop)."""
        self.reporter = HealthReporter([])
        self.server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self.reporter.servicer, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)
            self.server = None


@contextlib.asynccontextmanager
async def health_targets(*names: str) -> AsyncIterator[dict[str, HealthTarget]]:
    targets = {name: HealthTarget() for name in names}
    try:
        for target in targets.values():
            await target.start()
        yield targets
    finally:
        for target in targets.values():
            await target.stop()


@dataclass
class Monitor:
    stub: monitor_pb2_grpc.MonitorStub

    async def health(self) -> monitor_pb2.MeshHealth:
        return await self.stub.GetMeshHealth(EMPTY, timeout=5)

    async def alerts(self) -> list[tuple[str, str]]:
        response = await self.stub.ListAlerts(EMPTY, timeout=5)
        return sorted((alert.rule, alert.summary) for alert in response.alerts)


def monitor_settings(services: dict[str, MonitoredService], webhooks: list[str] | None = None) -> MonitorSettings:
    return MonitorSettings(
        host="127.0.0.1", port=0, metrics_port=0, app=AppSettings(environment="test"), services=services,
        watch_backoff_initial_seconds=0.05, watch_backoff_max_seconds=0.2, system_interval_seconds=0.05,
        # Only service alerts here: host load on a CI machine must not add any.
        alert_cpu_percent=1000, alert_memory_percent=1000, alert_disk_percent=1000,
        alert_for_seconds={"service_not_serving": 0, "worker_down": 0.3},
        alert_webhooks=webhooks or [], alert_webhook_backoff_seconds=0.05, extra_metrics={},
    )


@contextlib.asynccontextmanager
async def running_monitor(services: dict[str, MonitoredService],
                          webhooks: list[str] | None = None) -> AsyncIterator[Monitor]:
    settings = monitor_settings(services, webhooks)
    health = HealthReporter(SERVICE_NAMES)
    async with httpx.AsyncClient() as client:
        core = build_core(settings, health, client, NvmlGpus(None).read)
        server, port = create_server(settings, MonitorDeps(core, health))
        await server.start()
        tasks = [asyncio.create_task(core.run()), asyncio.create_task(watch_all(build_watchers(settings, core.book)))]
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield Monitor(monitor_pb2_grpc.MonitorStub(channel))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await channel.close()
            await server.stop(None)


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout: float = 5.0) -> T:
    """Poll probe until accept(value) holds; fail with the last value at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met before the deadline; last value: {value}")
        await asyncio.sleep(0.02)


def statuses(health: monitor_pb2.MeshHealth) -> dict[str, str]:
    return {name: service.status for name, service in health.services.items()}


def watched(targets: dict[str, HealthTarget]) -> dict[str, MonitoredService]:
    # The monitor's own address is never dialled: it records its own status.
    return {**{name: MonitoredService(address=t.address) for name, t in targets.items()},
            "monitor": MonitoredService(address="127.0.0.1:1")}


async def test_status_flips_are_seen_and_the_mesh_status_follows() -> None:
    async with health_targets("gateway", "compliance", "generation") as targets, \
            running_monitor(watched(targets)) as monitor:
        for target in targets.values():
            await target.reporter.set_serving(False)
        # Reached but not serving: NOT_SERVING, not UNKNOWN.
        first = await eventually(monitor.health, lambda h: statuses(h)["gateway"] == "NOT_SERVING")
        assert first.status == "NOT_SERVING"

        for target in targets.values():
            await target.reporter.set_serving(True)
        serving = await eventually(monitor.health, lambda h: h.status == "SERVING")
        assert statuses(serving) == dict.fromkeys(["gateway", "compliance", "generation", "monitor"], "SERVING")
        assert REGISTRY.get_sample_value("medai_mesh_service_serving", {"target": "generation"}) == 1

        await targets["generation"].reporter.set_serving(False)
        down = await eventually(monitor.health, lambda h: statuses(h)["generation"] == "NOT_SERVING")
        assert down.status == "NOT_SERVING"  # the only worker is down
        assert down.services["generation"].since.ToDatetime() > serving.services["generation"].since.ToDatetime()
        await eventually(monitor.alerts, lambda a: a == [("worker_down", WORKER_DOWN.format("generation"))])
        await targets["compliance"].reporter.set_serving(False)
        await eventually(monitor.alerts, lambda a: ("service_not_serving", "service compliance is not serving") in a)
        await targets["compliance"].reporter.set_serving(True)

        await targets["generation"].reporter.set_serving(True)
        await eventually(monitor.health, lambda h: h.status == "SERVING")
        await eventually(monitor.alerts, lambda a: a == [])

        await targets["compliance"].reporter.set_serving(False)
        await eventually(monitor.health, lambda h: h.status == "NOT_SERVING")


async def test_a_stopped_server_is_not_serving_until_it_is_back() -> None:
    with refusing_port() as never_port:
        async with health_targets("generation", "embedding") as targets:
            services = {**watched(targets), "conversation": MonitoredService(address=f"127.0.0.1:{never_port}")}
            async with running_monitor(services) as monitor:
                for target in targets.values():
                    await target.reporter.set_serving(True)
                await eventually(monitor.health, lambda h: statuses(h)["embedding"] == "SERVING")

                await targets["embedding"].stop()
                degraded = await eventually(monitor.health, lambda h: statuses(h)["embedding"] == "NOT_SERVING")
                assert degraded.status == "DEGRADED"  # generation still serves
                assert statuses(degraded)["conversation"] == "UNKNOWN"  # never reached

                await targets["embedding"].start()  # same port: the watcher reconnects
                await targets["embedding"].reporter.set_serving(True)
                await eventually(monitor.health, lambda h: statuses(h)["embedding"] == "SERVING")
                alerts = await eventually(monitor.alerts, lambda a: len(a) == 1)
                assert alerts == [("worker_down", WORKER_DOWN.format("conversation"))]


async def test_mesh_and_system_metrics_over_grpc() -> None:
    registries = {name: CollectorRegistry() for name in ("gateway", "compliance")}
    for count, registry in enumerate(registries.values(), start=1):
        Counter("medai_rpc_requests_total", "calls", ["method"], registry=registry).labels("/x").inc(count)
    with metrics_endpoint(registries["gateway"]) as gateway, metrics_endpoint(registries["compliance"]) as comp, \
            refusing_port() as down:
        services = {
            "gateway": MonitoredService(address="127.0.0.1:1", metrics_url=gateway),
            "compliance": MonitoredService(address="127.0.0.1:1", metrics_url=comp),
            "generation": MonitoredService(address="127.0.0.1:1", metrics_url=f"http://127.0.0.1:{down}/metrics"),
        }
        async with running_monitor(services) as monitor:
            body = await monitor.stub.GetMeshMetrics(EMPTY, timeout=5)
            system = await monitor.stub.GetSystemMetrics(EMPTY, timeout=5)

    assert body.content_type == "text/plain; version=0.0.4; charset=utf-8"
    [family] = [f for f in text_string_to_metric_families(body.data.decode()) if f.name == "medai_rpc_requests"]
    assert {s.labels["service"]: s.value for s in family.samples} == {"gateway": 1.0, "compliance": 2.0}
    assert 0 < system.memory_used_bytes <= system.memory_total_bytes
    assert 0 < system.disk_used_bytes <= system.disk_total_bytes
    assert list(system.gpus) == []
    assert system.collected_at.seconds > 0


async def test_a_worker_down_fires_after_its_for_duration_and_resolves_with_webhooks_received() -> None:
    def worker_alerts(response: monitor_pb2.ListAlertsResponse, history: bool = False) -> list:
        return [a for a in (response.history if history else response.alerts) if a.rule == "worker_down"]

    async def alerts() -> monitor_pb2.ListAlertsResponse:
        return await monitor.stub.ListAlerts(EMPTY, timeout=5)

    with webhook_receiver(fail_first=1) as receiver:  # the first delivery fails: retried
        async with health_targets("gateway", "embedding") as targets, \
                running_monitor(watched(targets), [receiver.url]) as monitor:
            for target in targets.values():
                await target.reporter.set_serving(True)
            await eventually(monitor.health, lambda h: h.status == "SERVING")
            await targets["embedding"].reporter.set_serving(False)
            pending = await eventually(alerts, lambda r: bool(worker_alerts(r)))
            firing = await eventually(alerts, lambda r: [a.state for a in worker_alerts(r)] == ["firing"])
            assert [a.state for a in worker_alerts(pending)] in (["pending"], ["firing"])  # 0.3 s pending first
            [alert] = worker_alerts(firing)
            assert (alert.instance, alert.severity, alert.for_seconds) == ("embedding", "critical", 0.3)
            assert (alert.fired_at.ToDatetime() - alert.since.ToDatetime()).total_seconds() >= 0.3

            await targets["embedding"].reporter.set_serving(True)
            resolved = await eventually(alerts, lambda r: not worker_alerts(r) and len(worker_alerts(r, True)) == 2)
            assert [a.state for a in worker_alerts(resolved, True)] == ["resolved", "firing"]

            def worker_bodies(bodies: list[dict]) -> list[dict]:
                return [b for b in bodies if b["alerts"][0]["labels"]["alertname"] == "worker_down"]

            bodies = worker_bodies(await asyncio.to_thread(receiver.wait_for, lambda b: len(worker_bodies(b)) == 2))
    assert [(b["status"], b["alerts"][0]["labels"]["instance"]) for b in bodies] == [
        ("firing", "embedding"), ("resolved", "embedding")]
    assert receiver.attempts >= 3  # one refused, then both delivered
