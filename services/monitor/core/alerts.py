"""Alert rules as data, and the book of alerts active now.

A rule maps the current readings to values per instance ("" for host-wide rules, the GPU
index, the service name); an instance whose value is above the rule's threshold is active.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from services.monitor.core import gauges
from services.monitor.core.clock import Clock, utc_now
from services.monitor.core.health import ServiceStatus
from services.monitor.core.system import SystemReading


@dataclass(frozen=True)
class Readings:
    """What the rules look at: one system reading and the services' health statuses."""

    system: SystemReading
    services: Mapping[str, ServiceStatus]


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str  # "warning" | "critical"
    # Name of the threshold in the monitor's settings; None: fires on any value above 0.
    threshold_setting: str | None
    values: Callable[[Readings], Mapping[str, float]]
    # Formatted with instance, value and threshold; never holds request data.
    summary: str


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
    AlertRule("service_not_serving", "critical", None,
              lambda r: {name: float(status is not ServiceStatus.SERVING) for name, status in r.services.items()},
              "service {instance} is not serving"),
)


@dataclass(frozen=True)
class Alert:
    rule: str
    instance: str
    severity: str
    summary: str
    value: float
    threshold: float
    since: datetime


def thresholds_from(settings: object, rules: Iterable[AlertRule] = RULES) -> dict[str, float]:
    """Each rule's threshold, read from the settings attribute the rule names."""
    return {rule.name: float(getattr(settings, rule.threshold_setting)) if rule.threshold_setting else 0.0
            for rule in rules}


class AlertBook:
    """Evaluates the rules on each reading; an alert keeps its `since` while it stays active."""

    def __init__(self, thresholds: Mapping[str, float], rules: Iterable[AlertRule] = RULES, *,
                 clock: Clock = utc_now) -> None:
        self._rules = tuple(rules)
        self._thresholds = dict(thresholds)
        self._clock = clock
        self._active: dict[tuple[str, str], Alert] = {}
        self._export()

    def evaluate(self, readings: Readings) -> list[Alert]:
        """Fire the rules above threshold, clear the others; returns the active alerts."""
        now = self._clock()
        active: dict[tuple[str, str], Alert] = {}
        for rule in self._rules:
            threshold = self._thresholds[rule.name]
            for instance, value in rule.values(readings).items():
                if value > threshold:
                    active[(rule.name, instance)] = self._fired(rule, instance, value, threshold, now)
        self._active = active
        self._export()
        return self.active()

    def active(self) -> list[Alert]:
        return sorted(self._active.values(), key=lambda alert: (alert.since, alert.rule, alert.instance))

    def _fired(self, rule: AlertRule, instance: str, value: float, threshold: float, now: datetime) -> Alert:
        summary = rule.summary.format(instance=instance, value=value, threshold=threshold)
        previous = self._active.get((rule.name, instance))
        if previous is not None:
            return replace(previous, value=value, summary=summary)
        return Alert(rule.name, instance, rule.severity, summary, value, threshold, now)

    def _export(self) -> None:
        for rule in self._rules:
            count = sum(1 for name, _ in self._active if name == rule.name)
            gauges.ALERTS_ACTIVE.labels(rule.name).set(count)
