"""The audit trail of calls the gateway refuses itself (401, 403, 429), bounded so a flood cannot fill
the disk: at most `per_source_per_minute` records per caller (key, claimed key or address) and
`total_per_minute` in all; the rest are counted (metric, one warning a minute). Records are shipped
to compliance (which chains them into the audit log) in batches, off the refused call's path."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from libs.errors import MedaiError
from libs.stores.ratelimit import InMemoryRateLimitStore, Limit
from services.gateway.core.model import Refusal
from services.gateway.metrics import REFUSALS_AUDITED, REFUSALS_UNAUDITED

log = logging.getLogger(__name__)


class RefusalSink(Protocol):
    async def record_refusals(self, refusals: Sequence[Refusal]) -> None: ...


@dataclass(frozen=True)
class RefusalAuditPolicy:
    per_source_per_minute: int = 60
    total_per_minute: int = 1200
    batch_size: int = 100
    flush_seconds: float = 0.5
    # Records waiting while compliance cannot take them; beyond this the oldest are dropped (counted).
    max_pending: int = 10_000
    retry_seconds: float = 2.0


class RefusalAudit:
    """Implements `ports.RefusalLog`; `run` ships the records (a background job), `close` flushes."""

    def __init__(self, sink: RefusalSink, policy: RefusalAuditPolicy = RefusalAuditPolicy(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sink = sink
        self._policy = policy
        self._clock = clock
        self._buckets = InMemoryRateLimitStore(clock=clock)
        self._per_source = Limit(policy.per_source_per_minute, policy.per_source_per_minute)
        self._total = Limit(policy.total_per_minute, policy.total_per_minute)
        self._pending: deque[Refusal] = deque()
        self._wake = asyncio.Event()
        self._suppressed = 0
        self._reported_at = clock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def record(self, refusal: Refusal) -> None:
        source = refusal.principal_id or refusal.claimed_key_id or refusal.client_address
        if not (self._buckets.acquire_now(f"source:{source}", self._per_source).allowed
                and self._buckets.acquire_now("total", self._total).allowed):
            self._drop("rate_limited")
            return
        if len(self._pending) >= self._policy.max_pending:
            self._pending.popleft()
            self._drop("backlog")
        self._pending.append(refusal)
        self._wake.set()

    async def run(self) -> None:
        """Ship pending records until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._policy.flush_seconds)
            self._wake.clear()
            self._report_suppressed()
            while self._pending:
                if not await self._ship_batch():
                    await asyncio.sleep(self._policy.retry_seconds)
                    break

    async def close(self) -> None:
        """Ship what is pending, once (compliance may be gone already)."""
        with contextlib.suppress(Exception):
            while self._pending and await self._ship_batch():
                pass

    async def _ship_batch(self) -> bool:
        batch = [self._pending[i] for i in range(min(self._policy.batch_size, len(self._pending)))]
        try:
            await self._sink.record_refusals(batch)
        except MedaiError as error:
            log.warning("refusal audit records not shipped yet", extra={"error": type(error).__name__,
                                                                         "pending": len(self._pending)})
            return False
        for _ in batch:
            self._pending.popleft()
        REFUSALS_AUDITED.inc(len(batch))
        return True

    def _drop(self, reason: str) -> None:
        REFUSALS_UNAUDITED.labels(reason).inc()
        self._suppressed += 1

    def _report_suppressed(self) -> None:
        now = self._clock()
        if self._suppressed and now - self._reported_at >= 60:
            log.warning("refused calls not audited (over the audit rate limit or backlog)",
                        extra={"count": self._suppressed})
            self._suppressed, self._reported_at = 0, now
