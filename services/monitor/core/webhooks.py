"""Delivery of firing and resolved alerts to webhooks, in Alertmanager's webhook format (version 4).

One notification per transition. Each webhook has its own queue and sender, so its notifications
arrive in order (a resolved never before its firing) and a slow or failing receiver holds up no
other. A delivery that fails (connection error, timeout, 5xx, 429) is retried after a backoff that
doubles (up to a minute), up to `attempts` tries; anything else the receiver answers ends it.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import httpx
from prometheus_client import Counter

from services.monitor.core.alerts import Alert, AlertState

log = logging.getLogger(__name__)

RECEIVER = "medai-monitor"
# What Alertmanager sends as endsAt while an alert fires.
ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_BACKOFF_SECONDS = 60.0
QUEUE_SIZE = 1000
RETRIED_STATUSES = frozenset({408, 429})

NOTIFICATIONS = Counter("medai_alert_notifications_total", "Alert notifications sent to webhooks, by result",
                        ["result"])
for _result in ("delivered", "failed", "dropped"):
    NOTIFICATIONS.labels(_result)


def _time(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else ZERO_TIME


def alert_labels(alert: Alert) -> dict[str, str]:
    labels = {"alertname": alert.rule, "severity": alert.severity, "source": RECEIVER}
    if alert.instance:
        labels["instance"] = alert.instance
    return labels


def fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]


def payload(alert: Alert, external_url: str = "") -> dict:
    """Alertmanager's webhook body for one alert that fired or resolved."""
    labels = alert_labels(alert)
    status = "resolved" if alert.state is AlertState.RESOLVED else "firing"
    annotations = {"summary": alert.summary, "value": f"{alert.value:g}", "threshold": f"{alert.threshold:g}"}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alert.rule}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": RECEIVER,
        "groupLabels": {"alertname": alert.rule},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": _time(alert.fired_at or alert.since),
            "endsAt": _time(alert.resolved_at),
            "generatorURL": "",
            "fingerprint": fingerprint(labels),
        }],
    }


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts: int = 5
    backoff_seconds: float = 1.0
    timeout_seconds: float = 5.0

    def delays(self) -> Iterable[float]:
        """The waits between attempts: backoff, 2 x backoff, ... at most a minute."""
        return (min(self.backoff_seconds * 2**n, MAX_BACKOFF_SECONDS) for n in range(self.attempts - 1))


Sleep = Callable[[float], Awaitable[None]]


class WebhookNotifier:
    """Queues notifications per webhook URL; `run` sends them until cancelled."""

    def __init__(self, urls: Iterable[str], client: httpx.AsyncClient, policy: DeliveryPolicy = DeliveryPolicy(),
                 *, sleep: Sleep = asyncio.sleep) -> None:
        self._queues = {url: asyncio.Queue[dict](QUEUE_SIZE) for url in urls}
        self._client = client
        self._policy = policy
        self._sleep = sleep

    def notify(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            body = payload(alert)
            for url, queue in self._queues.items():
                try:
                    queue.put_nowait(body)
                except asyncio.QueueFull:
                    NOTIFICATIONS.labels("dropped").inc()
                    log.warning("alert webhook queue full, notification dropped", extra={"webhook": _host(url)})

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for url, queue in self._queues.items():
                group.create_task(self._send_all(url, queue))

    async def _send_all(self, url: str, queue: asyncio.Queue[dict]) -> None:
        while True:
            body = await queue.get()
            delivered = await self.deliver(url, body)
            NOTIFICATIONS.labels("delivered" if delivered else "failed").inc()

    async def deliver(self, url: str, body: dict) -> bool:
        """POST body, retrying with backoff; True once the receiver accepted it (2xx)."""
        delays = iter(self._policy.delays())
        while True:
            outcome = await self._attempt(url, body)
            if outcome is not None:
                return outcome
            delay = next(delays, None)
            if delay is None:
                log.warning("alert notification not delivered", extra={"webhook": _host(url),
                                                                        "attempts": self._policy.attempts})
                return False
            await self._sleep(delay)

    async def _attempt(self, url: str, body: dict) -> bool | None:
        """True: delivered; False: refused for good; None: worth another try."""
        with contextlib.suppress(httpx.HTTPError):
            response = await self._client.post(url, json=body, timeout=self._policy.timeout_seconds)
            if response.is_success:
                return True
            if response.status_code < 500 and response.status_code not in RETRIED_STATUSES:
                log.warning("alert webhook refused a notification", extra={"webhook": _host(url),
                                                                            "status": response.status_code})
                return False
        return None


def _host(url: str) -> str:
    """The webhook's host for logs (a URL may carry a token in its path or query)."""
    return httpx.URL(url).host
