"""What the alert rules need from the services' own metrics, over a time window.

Each evaluation the monitor scrapes the mesh (the same families /metrics serves) and keeps a small
snapshot of the cumulative counters it needs; the difference between the newest snapshot and the
oldest one inside the window gives the rates, as Prometheus' `rate`/`increase` would: the gateway's
p95 response time of unary calls (from the histogram's buckets), the share of each service's calls
that failed server-side, de-identification failures; and, as they are now, the audit spool depths.
"""
from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from libs.observability.promql import ERROR_CODES, NOT_CALLS, STREAMS
from services.monitor.core.exposition import SERVICE_LABEL

_NOT_CALLS = re.compile(NOT_CALLS)
_STREAMS = re.compile(STREAMS)
_ERROR_CODES = frozenset(ERROR_CODES.split("|"))
LATENCY_SERVICE = "gateway"
P95 = 0.95


@dataclass(frozen=True)
class TrafficReading:
    """The traffic-based values the rules compare with their thresholds (empty: no data)."""

    p95_seconds: float | None = None
    error_ratio: Mapping[str, float] = field(default_factory=dict)
    audit_spool: Mapping[str, float] = field(default_factory=dict)
    deidentify_failures: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    """Cumulative values at one moment (monotonic seconds)."""

    at: float
    latency_buckets: Mapping[float, float] = field(default_factory=dict)  # le -> count (gateway, unary calls)
    calls: Mapping[str, float] = field(default_factory=dict)  # service -> calls
    errors: Mapping[str, float] = field(default_factory=dict)  # service -> calls failed server-side
    deidentify_failures: Mapping[str, float] = field(default_factory=dict)
    audit_spool: Mapping[str, float] = field(default_factory=dict)


def _add(totals: dict, key: object, value: float) -> None:
    totals[key] = totals.get(key, 0.0) + value


def snapshot(families: Iterable[Metric], at: float) -> Snapshot:
    """The values the rules need from the mesh's families (each sample labelled with its service)."""
    buckets: dict[float, float] = {}
    calls: dict[str, float] = {}
    errors: dict[str, float] = {}
    failures: dict[str, float] = {}
    spool: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            labels = sample.labels
            service = labels.get(SERVICE_LABEL, "")
            method = labels.get("method", "")
            if sample.name == "medai_rpc_duration_seconds_bucket":
                if service == LATENCY_SERVICE and not _NOT_CALLS.fullmatch(method) and not _STREAMS.fullmatch(method):
                    _add(buckets, float(labels["le"]), sample.value)
            elif sample.name == "medai_rpc_requests_total" and not _NOT_CALLS.fullmatch(method):
                _add(calls, service, sample.value)
                if labels.get("code") in _ERROR_CODES:
                    _add(errors, service, sample.value)
            elif sample.name == "medai_deidentify_failures_total":
                _add(failures, service, sample.value)
            elif sample.name == "medai_audit_spool_records":
                spool[service] = max(spool.get(service, 0.0), sample.value)
    return Snapshot(at, buckets, calls, errors, failures, spool)


def _increase(new: Mapping, old: Mapping) -> dict:
    """Per key, how much a counter grew (a counter that went down restarted: its new value)."""
    return {key: value - old.get(key, 0.0) if value >= old.get(key, 0.0) else value for key, value in new.items()}


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative bucket counts (le -> count); None without observations."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for index, (bound, count) in enumerate(ordered):
        if count >= rank:
            if math.isinf(bound):
                return ordered[index - 1][0] if index else None
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return ordered[-1][0]


class TrafficWindow:
    """Snapshots of the last `seconds`; `reading()` compares the newest with the oldest."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._snapshots: deque[Snapshot] = deque()

    def add(self, value: Snapshot) -> TrafficReading:
        self._snapshots.append(value)
        while len(self._snapshots) > 2 and value.at - self._snapshots[1].at >= self._seconds:
            self._snapshots.popleft()
        return self.reading()

    def reading(self) -> TrafficReading:
        if not self._snapshots:
            return TrafficReading()
        new, old = self._snapshots[-1], self._snapshots[0]
        if new is old:  # one snapshot: no rates yet
            return TrafficReading(audit_spool=dict(new.audit_spool))
        calls, errors = _increase(new.calls, old.calls), _increase(new.errors, old.errors)
        return TrafficReading(
            p95_seconds=histogram_quantile(P95, _increase(new.latency_buckets, old.latency_buckets)),
            error_ratio={service: errors.get(service, 0.0) / count for service, count in calls.items() if count > 0},
            audit_spool=dict(new.audit_spool),
            deidentify_failures=_increase(new.deidentify_failures, old.deidentify_failures),
        )
