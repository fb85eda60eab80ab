"""Alert rules: pending until their `for` has passed, firing, resolved, with history (readings injected)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from libs.config import MonitorSettings
from libs.config.services import ALERT_FOR_SECONDS
from services.monitor.core.alerts import RULES, AlertBook, AlertState, Readings, for_durations, thresholds_from
from services.monitor.core.gpu import GpuReading
from services.monitor.core.health import ServiceStatus
from services.monitor.core.system import SystemReading
from services.monitor.core.traffic import TrafficReading

GIB = 1024**3
T0 = datetime(2024, 1, 1, tzinfo=UTC)
THRESHOLDS = thresholds_from(MonitorSettings())
WORKERS = frozenset({"generation", "embedding", "conversation"})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def reading(cpu: float = 10.0, memory_used: int = GIB, disk_used: int = GIB,
            gpus: tuple[GpuReading, ...] = ()) -> SystemReading:
    return SystemReading(cpu_percent=cpu, memory_used_bytes=memory_used, memory_total_bytes=10 * GIB,
                         disk_used_bytes=disk_used, disk_total_bytes=10 * GIB, collected_at=T0, gpus=gpus)


def gpu(index: int, used_gib: int) -> GpuReading:
    return GpuReading(index, "test-gpu", 0.0, used_gib * GIB, 10 * GIB, 40.0)


def readings(system: SystemReading | None = None, traffic: TrafficReading | None = None,
             **services: ServiceStatus) -> Readings:
    return Readings(system or reading(), services, traffic or TrafficReading(), WORKERS)


def firing_gauge(rule: str) -> float | None:
    return REGISTRY.get_sample_value("medai_alerts_active", {"rule": rule})


def book(clock: Clock, **for_seconds: float) -> AlertBook:
    return AlertBook(THRESHOLDS, for_seconds=for_durations(for_seconds), clock=clock)


def test_the_seeds_thresholds_are_the_defaults():
    assert {name: THRESHOLDS[name] for name in ("cpu_high", "memory_high", "disk_high", "response_time_p95_high",
                                                "error_ratio_high")} == {
        "cpu_high": 80.0, "memory_high": 85.0, "disk_high": 90.0, "response_time_p95_high": 5.0,
        "error_ratio_high": 0.05}
    assert set(ALERT_FOR_SECONDS) == {rule.name for rule in RULES}
    assert all(seconds > 0 for seconds in ALERT_FOR_SECONDS.values())


def test_cpu_alert_is_pending_for_its_for_duration_then_fires_then_resolves():
    clock = Clock()
    alerts = book(clock)  # cpu_high: for 5 minutes
    assert alerts.evaluate(readings(reading(cpu=95.0))) == []
    [pending] = alerts.active()
    assert (pending.state, pending.since, pending.for_seconds) == (AlertState.PENDING, T0, 300.0)
    assert firing_gauge("cpu_high") == 0

    clock.advance(299)
    assert alerts.evaluate(readings(reading(cpu=96.0))) == []
    clock.advance(1)
    [fired] = alerts.evaluate(readings(reading(cpu=97.0)))
    assert (fired.rule, fired.state, fired.severity, fired.value, fired.threshold) == (
        "cpu_high", AlertState.FIRING, "warning", 97.0, 80.0)
    assert (fired.since, fired.fired_at) == (T0, T0 + timedelta(seconds=300))
    assert "97.0%" in fired.summary
    assert firing_gauge("cpu_high") == 1

    clock.advance(10)
    assert alerts.evaluate(readings(reading(cpu=98.0))) == []  # still firing: no new transition
    clock.advance(10)
    [resolved] = alerts.evaluate(readings(reading(cpu=80.0)))  # at the threshold is not above it
    assert (resolved.state, resolved.resolved_at) == (AlertState.RESOLVED, T0 + timedelta(seconds=320))
    assert alerts.active() == [] and firing_gauge("cpu_high") == 0
    assert [(a.rule, a.state) for a in alerts.history()] == [("cpu_high", AlertState.RESOLVED),
                                                             ("cpu_high", AlertState.FIRING)]


def test_a_condition_that_clears_while_pending_never_fires():
    clock = Clock()
    alerts = book(clock)
    alerts.evaluate(readings(reading(cpu=95.0)))
    clock.advance(60)
    assert alerts.evaluate(readings(reading(cpu=10.0))) == []
    clock.advance(600)
    assert alerts.evaluate(readings(reading(cpu=95.0))) == []  # pending again, from now
    assert alerts.active()[0].since == clock.now and alerts.history() == []


def test_a_zero_for_duration_fires_at_once():
    alerts = book(Clock(), memory_high=0, disk_high=0)
    fired = alerts.evaluate(readings(reading(memory_used=9 * GIB, disk_used=10 * GIB)))
    assert {(a.rule, a.severity, round(a.value)) for a in fired} == {
        ("memory_high", "warning", 90), ("disk_high", "critical", 100)}


def test_gpu_memory_rule_is_per_device():
    alerts = book(Clock(), gpu_memory_high=0)
    [alert] = alerts.evaluate(readings(reading(gpus=(gpu(0, 2), gpu(1, 10)))))
    assert (alert.rule, alert.instance, alert.value) == ("gpu_memory_high", "1", 100.0)
    assert "GPU 1" in alert.summary


def test_traffic_rules_p95_error_ratio_spool_and_deidentification_failures():
    clock = Clock()
    alerts = book(clock, response_time_p95_high=0, error_ratio_high=0, audit_spool_not_empty=60,
                  deidentify_failures=0)
    traffic = TrafficReading(p95_seconds=7.5, error_ratio={"compliance": 0.2, "gateway": 0.01},
                             audit_spool={"compliance": 3.0}, deidentify_failures={"compliance": 2.0})
    fired = alerts.evaluate(readings(traffic=traffic))
    assert sorted((a.rule, a.instance) for a in fired) == [
        ("deidentify_failures", "compliance"), ("error_ratio_high", "compliance"),
        ("response_time_p95_high", "gateway")]
    clock.advance(60)
    [spool] = alerts.evaluate(readings(traffic=traffic))
    assert (spool.rule, spool.value) == ("audit_spool_not_empty", 3.0)
    assert "3 audit records" in spool.summary
    clock.advance(5)
    resolved = alerts.evaluate(readings(traffic=TrafficReading(audit_spool={"compliance": 0.0})))
    assert {a.state for a in resolved} == {AlertState.RESOLVED} and len(resolved) == 4


def test_workers_down_are_worker_down_other_services_service_not_serving():
    clock = Clock()
    alerts = book(clock, worker_down=0, service_not_serving=0)
    fired = alerts.evaluate(readings(gateway=ServiceStatus.SERVING, generation=ServiceStatus.NOT_SERVING,
                                     compliance=ServiceStatus.UNKNOWN))
    assert sorted((a.rule, a.instance, a.severity) for a in fired) == [
        ("service_not_serving", "compliance", "critical"), ("worker_down", "generation", "critical")]
    assert firing_gauge("worker_down") == 1
    resolved = alerts.evaluate(readings(generation=ServiceStatus.SERVING, compliance=ServiceStatus.SERVING))
    assert {a.rule for a in resolved} == {"worker_down", "service_not_serving"}
    assert firing_gauge("worker_down") == 0


def test_history_is_bounded_newest_first():
    clock = Clock()
    alerts = AlertBook(THRESHOLDS, for_seconds=for_durations({"cpu_high": 0}), history_size=3, clock=clock)
    for _ in range(3):
        alerts.evaluate(readings(reading(cpu=99.0)))
        clock.advance(1)
        alerts.evaluate(readings(reading(cpu=1.0)))
        clock.advance(1)
    history = alerts.history()
    assert len(history) == 3 and history[0].state is AlertState.RESOLVED
    assert history[0].resolved_at == T0 + timedelta(seconds=5)


def test_thresholds_and_for_durations_come_from_the_settings():
    settings = MonitorSettings(alert_cpu_percent=12.5, alert_memory_percent=34.0, alert_disk_percent=56.0,
                               alert_gpu_memory_percent=78.0, alert_p95_seconds=2.0, alert_error_ratio=0.1,
                               alert_for_seconds={"cpu_high": 1})
    assert thresholds_from(settings) == {
        "cpu_high": 12.5, "memory_high": 34.0, "disk_high": 56.0, "gpu_memory_high": 78.0,
        "response_time_p95_high": 2.0, "error_ratio_high": 0.1, "service_not_serving": 0.0, "worker_down": 0.0,
        "audit_spool_not_empty": 0.0, "deidentify_failures": 0.0}
    durations = for_durations(settings.alert_for_seconds)
    assert durations["cpu_high"] == 1 and durations["memory_high"] == ALERT_FOR_SECONDS["memory_high"]
