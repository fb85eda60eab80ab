"""Alert notifications reach a real local HTTP receiver in Alertmanager's webhook format, in order,
with retries and a doubling backoff on failures."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.monitor.core.alerts import Alert, AlertState
from services.monitor.core.webhooks import DeliveryPolicy, WebhookNotifier, payload
from tests.support.http_endpoints import refusing_port
from tests.support.webhooks import webhook_receiver

T0 = datetime(2024, 1, 1, tzinfo=UTC)
FIRING = Alert("worker_down", "embedding", "critical", "model worker embedding is not serving", 1.0, 0.0, T0,
               AlertState.FIRING, 60.0, fired_at=T0 + timedelta(seconds=60))
RESOLVED = replace(FIRING, state=AlertState.RESOLVED, resolved_at=T0 + timedelta(seconds=90))


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_payload_is_alertmanagers_webhook_format():
    body = payload(FIRING)
    assert {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
            "commonAnnotations", "externalURL", "alerts"} <= body.keys()
    assert (body["version"], body["status"], body["groupLabels"]) == ("4", "firing", {"alertname": "worker_down"})
    [alert] = body["alerts"]
    assert alert["labels"] == {"alertname": "worker_down", "severity": "critical", "instance": "embedding",
                               "source": "medai-monitor"}
    assert alert["annotations"]["summary"] == FIRING.summary
    assert (alert["startsAt"], alert["endsAt"]) == ("2024-01-01T00:01:00Z", "0001-01-01T00:00:00Z")
    resolved = payload(RESOLVED)["alerts"][0]
    assert (resolved["status"], resolved["endsAt"]) == ("resolved", "2024-01-01T00:01:30Z")
    assert resolved["fingerprint"] == alert["fingerprint"] and len(alert["fingerprint"]) == 16


async def test_failed_deliveries_are_retried_with_a_doubling_backoff():
    sleeps = Sleeps()
    with webhook_receiver(fail_first=3) as receiver:
        async with httpx.AsyncClient() as client:
            notifier = WebhookNotifier([receiver.url], client, DeliveryPolicy(5, 0.5, 2.0), sleep=sleeps)
            assert await notifier.deliver(receiver.url, payload(FIRING)) is True
    assert receiver.attempts == 4 and sleeps.delays == [0.5, 1.0, 2.0]
    assert receiver.bodies() == [payload(FIRING)]


async def test_delivery_gives_up_after_its_attempts_and_on_a_client_error():
    with webhook_receiver(fail_first=100) as receiver:
        async with httpx.AsyncClient() as client:
            sleeps = Sleeps()
            notifier = WebhookNotifier([receiver.url], client, DeliveryPolicy(3, 0.1, 2.0), sleep=sleeps)
            assert await notifier.deliver(receiver.url, payload(FIRING)) is False
            assert receiver.attempts == 3 and sleeps.delays == [0.1, 0.2]
    with webhook_receiver(fail_first=100, fail_status=400) as receiver:
        async with httpx.AsyncClient() as client:
            notifier = WebhookNotifier([receiver.url], client, DeliveryPolicy(3, 0.1, 2.0), sleep=Sleeps())
            assert await notifier.deliver(receiver.url, payload(FIRING)) is False
            assert receiver.attempts == 1  # refused for good: not retried


async def test_a_receiver_that_is_not_listening_yet_is_retried():
    with refusing_port() as port:
        async with httpx.AsyncClient() as client:
            sleeps = Sleeps()
            notifier = WebhookNotifier([], client, DeliveryPolicy(2, 0.1, 1.0), sleep=sleeps)
            assert await notifier.deliver(f"http://127.0.0.1:{port}/x", payload(FIRING)) is False
            assert sleeps.delays == [0.1]


async def test_notifications_arrive_in_order_at_every_webhook():
    with webhook_receiver(fail_first=2) as first, webhook_receiver() as second:
        async with httpx.AsyncClient() as client:
            notifier = WebhookNotifier([first.url, second.url], client, DeliveryPolicy(5, 0.01, 2.0))
            runner = asyncio.create_task(notifier.run())
            try:
                notifier.notify([FIRING])
                notifier.notify([RESOLVED])
                for receiver in (first, second):
                    bodies = await asyncio.to_thread(receiver.wait_for, lambda b: len(b) == 2, 10)
                    assert [b["status"] for b in bodies] == ["firing", "resolved"]
            finally:
                runner.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await runner
