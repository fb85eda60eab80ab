"""Prometheus metrics of the gateway (labels are fixed names, never request content or key ids)."""
from __future__ import annotations

from prometheus_client import Counter

RATE_LIMITED = Counter(
    "medai_gateway_rate_limited_total", "Calls refused by a per-key rate limit", ["limit"]
)
