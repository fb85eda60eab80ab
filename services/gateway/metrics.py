"""Prometheus metrics of the gateway (labels are fixed names, never request content or key ids)."""
from __future__ import annotations

from prometheus_client import Counter

RATE_LIMITED = Counter(
    "medai_gateway_rate_limited_total", "Calls refused by a per-key rate limit", ["limit"]
)
for _limit in ("requests", "tokens"):  # exported at 0 from the start
    RATE_LIMITED.labels(_limit)
REFUSALS_AUDITED = Counter(
    "medai_gateway_refusals_audited_total", "Refused calls (401, 403, 429) shipped to the audit log"
)
REFUSALS_UNAUDITED = Counter(
    "medai_gateway_refusals_unaudited_total",
    "Refused calls left out of the audit log (over its rate limit, or the backlog was full)", ["reason"],
)
