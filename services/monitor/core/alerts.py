"""Alert rules as data, and the book of alerts: pending, firing, resolved, with history.

A rule maps the current readings to values per instance ("" for host-wide rules, the GPU index,
the service name); an instance whose value is above the rule's threshold is pending, and fires
once that has held for the rule's `for` duration (as Prometheus does). A firing alert whose
condition no longer holds is resolved. Transitions (firing, resolved) are kept in a bounded
history and returned by `evaluate`, for the webhooks.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from libs.config.services import ALERT_FOR_SECONDS
from services.monitor.core import gauges
from services.monitor.core.clock import Clock, utc_now
from services.monitor.core.health import ServiceStatus
from services.monitor.core.system import SystemReading
from services.monitor.core.traffic import TrafficReading


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Readings:
    """What the rules look at: a system reading, the services' health, the traffic over the window."""

    system: SystemReading
    services: Mapping[str, ServiceStatus]
    traffic: TrafficReading = field(default_factory=TrafficReading)
    workers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str  # "warning" | "critical"
    # Name of the threshold in the monitor's settings; None: fires on any value above 0.
    threshold_setting: str | None
    values: Callable[[Readings], Mapping[str, float]]
    # Formatted with instance, value and threshold; never holds request data.
    summary: str


def _not_serving(readings: Readings, workers: bool) -> dict[str, float]:
    return {name: float(status is not ServiceStatus.SERVING) for name, status in readings.services.items()
            if (name in readings.workers) == workers}


RULES: tuple[AlertRule, ...] = (
    AlertRule("cpu_high", "warning", "alert_cpu_percent", lambda r: {"": r.system.cpu_percent},
              "CPU at {value:.1f}% (threshold {threshold:.1f}%)"),
    AlertRule("memory_high", "warning", "alert_memory_percent", lambda r: {"": r.system.memory_percent},
              "memory at {value:.1f}% (threshold {threshold:.1f}%)"),
    AlertRule("disk_high", "critical", "alert_disk_percent", lambda r: {"": r.system.disk_percent},
              "disk at {value:.1f}% (threshold {threshold:.1f}%)"),
    AlertRule("gpu_memory_high", "warning", "alert_gpu_memory_percent",
              lambda r: {str(gpu.index): gpu.memory_percent for gpu in r.system.gpus},
              "GPU {instance} memory at {value:.1f}% (threshold {threshold:.1f}%)"),
    AlertRule("response_time_p95_high", "warning", "alert_p95_seconds",
              lambda r: {} if r.traffic.p95_seconds is None else {"gateway": r.traffic.p95_seconds},
              "p95 response time of the {instance}'s unary calls {value:.2f} s (threshold {threshold:.2f} s)"),
    AlertRule("error_ratio_high", "critical", "alert_error_ratio", lambda r: r.traffic.error_ratio,
              "{instance} fails {value:.1%} of its calls (threshold {threshold:.1%})"),
    AlertRule("service_not_serving", "critical", None, lambda r: _not_serving(r, workers=False),
              "service {instance} is not serving"),
    AlertRule("worker_down", "critical", None, lambda r: _not_serving(r, workers=True),
              "model worker {instance} is not serving: its models answer 503"),
    AlertRule("audit_spool_not_empty", "critical", None, lambda r: r.traffic.audit_spool,
              "{value:.0f} audit records wait in {instance}'s spool (the audit database does not take them)"),
    AlertRule("deidentify_failures", "critical", None, lambda r: r.traffic.deidentify_failures,
              "PHI analysis failed for {value:.0f} requests in {instance} (refused)"),
)


@dataclass(frozen=True)
class Alert:
    rule: str
    instance: str
    severity: str
    summary: str
    value: float
    threshold: float
    since: datetime  # when the condition began to hold
    state: AlertState = AlertState.FIRING
    for_seconds: float = 0.0
    fired_at: datetime | None = None
    resolved_at: datetime | None = None


def thresholds_from(settings: object, rules: Iterable[AlertRule] = RULES) -> dict[str, float]:
    """Each rule's threshold, read from the settings attribute the rule names."""
    return {rule.name: float(getattr(settings, rule.threshold_setting)) if rule.threshold_setting else 0.0
            for rule in rules}


def for_durations(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Seconds each rule must hold before it fires: the defaults, with the settings' overrides."""
    return {**ALERT_FOR_SECONDS, **(overrides or {})}


class AlertBook:
    """Evaluates the rules on each reading; keeps pending and firing alerts and the history of transitions."""

    def __init__(self, thresholds: Mapping[str, float], rules: Iterable[AlertRule] = RULES, *,
                 for_seconds: Mapping[str, float] | None = None, history_size: int = 200,
                 clock: Clock = utc_now) -> None:
        self._rules = tuple(rules)
        self._thresholds = dict(thresholds)
        self._for = dict(for_seconds or {})
        self._clock = clock
        self._alerts: dict[tuple[str, str], Alert] = {}
        self._history: deque[Alert] = deque(maxlen=history_size)
        self._export()

    def evaluate(self, readings: Readings) -> list[Alert]:
        """One round: alerts start pending, fire after their `for`, resolve when clear; returns the
        transitions of this round (fired and resolved alerts), oldest first."""
        now = self._clock()
        current: dict[tuple[str, str], Alert] = {}
        transitions: list[Alert] = []
        for rule in self._rules:
            threshold = self._thresholds[rule.name]
            for instance, value in rule.values(readings).items():
                if value > threshold:
                    alert = self._held(rule, instance, value, threshold, now)
                    if alert.state is AlertState.FIRING and alert.fired_at == now:
                        transitions.append(alert)
                    current[(rule.name, instance)] = alert
        for key, alert in self._alerts.items():
            if key not in current and alert.state is AlertState.FIRING:
                transitions.append(replace(alert, state=AlertState.RESOLVED, resolved_at=now))
        self._alerts = current
        self._history.extendleft(transitions)
        self._export()
        return transitions

    def active(self) -> list[Alert]:
        """Pending and firing alerts, oldest first."""
        return sorted(self._alerts.values(), key=lambda alert: (alert.since, alert.rule, alert.instance))

    def firing(self) -> list[Alert]:
        return [alert for alert in self.active() if alert.state is AlertState.FIRING]

    def history(self) -> list[Alert]:
        """Fired and resolved transitions, newest first."""
        return list(self._history)

    def _held(self, rule: AlertRule, instance: str, value: float, threshold: float, now: datetime) -> Alert:
        summary = rule.summary.format(instance=instance, value=value, threshold=threshold)
        previous = self._alerts.get((rule.name, instance))
        for_seconds = float(self._for.get(rule.name, 0.0))
        alert = (replace(previous, value=value, summary=summary) if previous is not None else
                 Alert(rule.name, instance, rule.severity, summary, value, threshold, now, AlertState.PENDING,
                       for_seconds))
        if alert.state is AlertState.PENDING and now - alert.since >= timedelta(seconds=for_seconds):
            alert = replace(alert, state=AlertState.FIRING, fired_at=now)
        return alert

    def _export(self) -> None:
        for rule in self._rules:
            count = sum(1 for (name, _), alert in self._alerts.items()
                        if name == rule.name and alert.state is AlertState.FIRING)
            gauges.ALERTS_ACTIVE.labels(rule.name).set(count)
