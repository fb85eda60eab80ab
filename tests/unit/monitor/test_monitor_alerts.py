"""Alert rules fire and clear on thresholds (readings injected; no real load)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from libs.config import MonitorSettings
from services.monitor.core.alerts import RULES, AlertBook, Readings, thresholds_from
from services.monitor.core.gpu import GpuReading
from services.monitor.core.health import ServiceStatus
from services.monitor.core.system import SystemReading

GIB = 1024**3
T0 = datetime(2024, 1, 1, tzinfo=UTC)
THRESHOLDS = {"cpu_high": 90.0, "memory_high": 80.0, "disk_high": 95.0, "gpu_memory_high": 50.0,
              "service_not_serving": 0.0}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def reading(cpu: float = 10.0, memory_used: int = GIB, disk_used: int = GIB,
            gpus: tuple[GpuReading, ...] = ()) -> SystemReading:
    return SystemReading(cpu_percent=cpu, memory_used_bytes=memory_used, memory_total_bytes=10 * GIB,
                         disk_used_bytes=disk_used, disk_total_bytes=10 * GIB, collected_at=T0, gpus=gpus)


def gpu(index: int, used_gib: int) -> GpuReading:
    return GpuReading(index, "test-gpu", 0.0, used_gib * GIB, 10 * GIB, 40.0)


def calm(**services: ServiceStatus) -> Readings:
    return Readings(reading(), services)


def active_gauge(rule: str) -> float | None:
    return REGISTRY.get_sample_value("medai_alerts_active", {"rule": rule})


def test_cpu_alert_fires_keeps_its_since_and_clears() -> None:
    clock = Clock()
    book = AlertBook(THRESHOLDS, clock=clock)
    assert book.evaluate(calm()) == []
    assert active_gauge("cpu_high") == 0

    clock.now = T0 + timedelta(seconds=5)
    [alert] = book.evaluate(Readings(reading(cpu=95.0), {}))
    assert (alert.rule, alert.severity, alert.value, alert.threshold, alert.since) == (
        "cpu_high", "warning", 95.0, 90.0, T0 + timedelta(seconds=5))
    assert "95.0%" in alert.summary
    assert active_gauge("cpu_high") == 1

    clock.now = T0 + timedelta(seconds=10)
    [still] = book.evaluate(Readings(reading(cpu=97.0), {}))
    assert (still.value, still.since) == (97.0, T0 + timedelta(seconds=5))

    assert book.evaluate(Readings(reading(cpu=90.0), {})) == []  # at the threshold is not above it
    assert book.active() == []
    assert active_gauge("cpu_high") == 0


def test_memory_and_disk_use_percent_of_total() -> None:
    book = AlertBook(THRESHOLDS)
    alerts = book.evaluate(Readings(reading(memory_used=9 * GIB, disk_used=10 * GIB), {}))
    assert {(a.rule, a.severity, round(a.value)) for a in alerts} == {
        ("memory_high", "warning", 90), ("disk_high", "critical", 100)}


def test_gpu_memory_rule_is_per_device() -> None:
    book = AlertBook(THRESHOLDS)
    [alert] = book.evaluate(Readings(reading(gpus=(gpu(0, 2), gpu(1, 8))), {}))
    assert (alert.rule, alert.instance, alert.value) == ("gpu_memory_high", "1", 80.0)
    assert "GPU 1" in alert.summary
    assert book.evaluate(calm()) == []  # no GPUs: nothing to alert on


def test_service_not_serving_per_service() -> None:
    book = AlertBook(THRESHOLDS)
    alerts = book.evaluate(calm(gateway=ServiceStatus.SERVING, generation=ServiceStatus.NOT_SERVING,
                                embedding=ServiceStatus.UNKNOWN))
    assert sorted((a.rule, a.instance, a.severity) for a in alerts) == [
        ("service_not_serving", "embedding", "critical"), ("service_not_serving", "generation", "critical")]
    assert active_gauge("service_not_serving") == 2
    assert book.evaluate(calm(generation=ServiceStatus.SERVING)) == []
    assert active_gauge("service_not_serving") == 0


def test_thresholds_come_from_the_settings_each_rule_names() -> None:
    settings = MonitorSettings(alert_cpu_percent=12.5, alert_memory_percent=34.0, alert_disk_percent=56.0,
                               alert_gpu_memory_percent=78.0)
    assert thresholds_from(settings) == {"cpu_high": 12.5, "memory_high": 34.0, "disk_high": 56.0,
                                         "gpu_memory_high": 78.0, "service_not_serving": 0.0}
    assert {rule.name for rule in RULES} == set(THRESHOLDS)
