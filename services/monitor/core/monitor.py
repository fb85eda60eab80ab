"""The monitor's core: what the servicer calls and the periodic system/alert evaluation."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from libs.config import MonitorSettings
from libs.lifecycle import Readiness
from services.monitor.core import gauges, system
from services.monitor.core.alerts import Alert, AlertBook, Readings, for_durations, thresholds_from
from services.monitor.core.clock import Clock, utc_now
from services.monitor.core.gpu import GpuReading
from services.monitor.core.health import HealthBook, MeshHealth, MeshRoles, ServiceStatus
from services.monitor.core.scrape import MeshScraper
from services.monitor.core.system import SystemProbe, SystemReading
from services.monitor.core.traffic import TrafficWindow, snapshot
from services.monitor.core.webhooks import DeliveryPolicy, WebhookNotifier

log = logging.getLogger(__name__)


class MonitorCore:
    """Answers from the health cache and the alert book; scrapes and reads the host on demand."""

    def __init__(self, *, name: str, readiness: Readiness, book: HealthBook, alerts: AlertBook,
                 read_system: Callable[[], SystemReading], scraper: MeshScraper, interval_seconds: float,
                 traffic: TrafficWindow | None = None, notifier: WebhookNotifier | None = None,
                 workers: frozenset[str] = frozenset()) -> None:
        self._name = name
        self._readiness = readiness
        self.book = book
        self._alerts = alerts
        self._read_system = read_system
        self._scraper = scraper
        self._interval = interval_seconds
        self._traffic = traffic or TrafficWindow(300.0)
        self._notifier = notifier
        self._workers = workers

    async def set_serving(self, serving: bool) -> None:
        """The monitor's own status: reported to grpc.health and recorded in the book directly
        (watching itself would need its own bound address and adds nothing)."""
        await self._readiness.set_serving(serving)
        if self._name in self.book.names:
            self.book.record(self._name, ServiceStatus.SERVING if serving else ServiceStatus.NOT_SERVING)

    def mesh_health(self) -> MeshHealth:
        return self.book.snapshot()

    async def mesh_metrics(self) -> bytes:
        return await self._scraper.scrape()

    async def system_metrics(self) -> SystemReading:
        return await asyncio.to_thread(self._read_system)

    def alerts(self) -> list[Alert]:
        """Pending and firing alerts."""
        return self._alerts.active()

    def alert_history(self) -> list[Alert]:
        """Alerts that fired or resolved, newest first."""
        return self._alerts.history()

    async def evaluate(self) -> list[Alert]:
        """One round: read the host and the mesh's metrics, export the gauges, evaluate the alert rules,
        notify the webhooks of what fired or resolved; returns those transitions."""
        reading = await self.system_metrics()
        system.export(reading)
        families = await self._scraper.families()
        traffic = self._traffic.add(await asyncio.to_thread(snapshot, families, time.monotonic()))
        transitions = self._alerts.evaluate(Readings(reading, self.book.statuses(), traffic, self._workers))
        for alert in transitions:
            log.warning("alert %s", alert.state.value, extra={"rule": alert.rule, "instance": alert.instance,
                                                               "severity": alert.severity})
        if self._notifier is not None:
            self._notifier.notify(transitions)
        return transitions

    async def run(self) -> None:
        """Become SERVING, then evaluate every interval (and deliver notifications) until cancelled."""
        await self.set_serving(True)
        async with asyncio.TaskGroup() as group:
            if self._notifier is not None:
                group.create_task(self._notifier.run())
            group.create_task(self._evaluate_forever())

    async def _evaluate_forever(self) -> None:
        while True:
            try:
                await self.evaluate()
            except Exception:  # a failed round must not end the loop; the next one may succeed
                log.exception("alert evaluation failed")
            await asyncio.sleep(self._interval)


def export_status(name: str, status: ServiceStatus) -> None:
    gauges.MESH_SERVICE_SERVING.labels(name).set(1 if status is ServiceStatus.SERVING else 0)


def build_core(settings: MonitorSettings, readiness: Readiness, client: httpx.AsyncClient,
               read_gpus: Callable[[], list[GpuReading]], *, clock: Clock = utc_now,
               scrape_client: httpx.AsyncClient | None = None) -> MonitorCore:
    """The core for these settings; the monitor itself is always in the book. scrape_client (default: client)
    reads the services' metrics (with mesh mTLS: the monitor's certificate, the mesh CA); client posts webhooks."""
    names = dict.fromkeys([*settings.services, settings.service_name])
    roles = MeshRoles(frozenset(settings.critical_services), frozenset(settings.worker_services))
    probe = SystemProbe(system.disk_path(settings.app.data_dir), read_gpus, clock=clock)
    metrics_urls = {name: service.metrics_url for name, service in settings.services.items()} | settings.extra_metrics
    policy = DeliveryPolicy(settings.alert_webhook_attempts, settings.alert_webhook_backoff_seconds,
                            settings.alert_webhook_timeout_seconds)
    return MonitorCore(
        name=settings.service_name,
        readiness=readiness,
        book=HealthBook(names, roles, clock=clock, listener=export_status),
        alerts=AlertBook(thresholds_from(settings), for_seconds=for_durations(settings.alert_for_seconds),
                         history_size=settings.alert_history_size, clock=clock),
        read_system=probe.read,
        scraper=MeshScraper(metrics_urls, scrape_client or client, settings.scrape_timeout_seconds),
        interval_seconds=settings.system_interval_seconds,
        traffic=TrafficWindow(settings.alert_window_seconds),
        notifier=WebhookNotifier(settings.alert_webhooks, client, policy) if settings.alert_webhooks else None,
        workers=frozenset(settings.worker_services),
    )
