"""Mesh metrics from real prometheus_client HTTP endpoints; failing targets are skipped and counted."""
from __future__ import annotations

from contextlib import AbstractContextManager

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families

from services.monitor.core.scrape import MeshScraper
from tests.support.http_endpoints import failing_endpoint, metrics_endpoint, refusing_port


def service_metrics(requests: int, in_flight: float) -> AbstractContextManager[str]:
    registry = CollectorRegistry()
    Counter("medai_rpc_requests_total", "calls", ["method"], registry=registry).labels("/m").inc(requests)
    Gauge("medai_rpc_in_flight", "in flight", registry=registry).set(in_flight)
    return metrics_endpoint(registry)


def scrape_errors(target: str) -> float:
    return REGISTRY.get_sample_value("medai_monitor_scrape_errors_total", {"target": target}) or 0.0


async def test_two_services_merge_and_failing_targets_are_skipped() -> None:
    with (service_metrics(3, 1) as gateway, service_metrics(7, 2) as compliance,
          refusing_port() as down_port, failing_endpoint() as broken):
        before = scrape_errors("down"), scrape_errors("broken")
        targets = {"gateway": gateway, "compliance": compliance, "broken": broken, "quiet": "",
                   "down": f"http://127.0.0.1:{down_port}/metrics"}
        async with httpx.AsyncClient() as client:
            text = (await MeshScraper(targets, client, timeout_seconds=2.0).scrape()).decode()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    requests = {s.labels["service"]: s.value for s in families["medai_rpc_requests"].samples}
    assert requests == {"gateway": 3.0, "compliance": 7.0}
    assert {s.labels["service"]: s.value for s in families["medai_rpc_in_flight"].samples} == {
        "gateway": 1.0, "compliance": 2.0}
    assert text.count("# TYPE medai_rpc_requests_total counter") == 1
    assert all(s.labels["service"] in {"gateway", "compliance"} for f in families.values() for s in f.samples)
    assert (scrape_errors("down"), scrape_errors("broken")) == (before[0] + 1, before[1] + 1)
    assert scrape_errors("quiet") == 0.0


async def test_no_reachable_target_gives_an_empty_exposition() -> None:
    with refusing_port() as port:
        async with httpx.AsyncClient() as client:
            scraper = MeshScraper({"down": f"http://127.0.0.1:{port}/metrics"}, client, timeout_seconds=1.0)
            assert await scraper.scrape() == b""
