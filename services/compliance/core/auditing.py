"""`RequestAudit`: the audit records of one request, written around its work.

`started()` writes the request record once the request is validated and de-identified, before
any cache lookup or worker call (with fail-closed, a request that cannot be audited stops here);
leaving the `async with` writes the completion record with the outcome and status code.
Requests refused before that (bad input, unknown model) leave a completion record only.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Protocol

from libs.errors import (
    Cancelled,
    DeadlineExceeded,
    InvalidInput,
    MedaiError,
    NotFound,
    NotReady,
    Overloaded,
    PermissionDenied,
    Unauthenticated,
)
from libs.stores.audit import AuditEvent
from services.compliance.core.audit import AuditLog, Digester, event_for, safe_token
from services.compliance.core.types import Caller, DetectedEntity

# Domain error -> the gRPC status name recorded (the core does not import grpc).
STATUS_NAMES: dict[type[BaseException], str] = {
    InvalidInput: "INVALID_ARGUMENT", Unauthenticated: "UNAUTHENTICATED", PermissionDenied: "PERMISSION_DENIED",
    NotFound: "NOT_FOUND", NotReady: "UNAVAILABLE", Overloaded: "RESOURCE_EXHAUSTED",
    DeadlineExceeded: "DEADLINE_EXCEEDED", Cancelled: "CANCELLED", asyncio.CancelledError: "CANCELLED",
}


def status_name(error: BaseException | None) -> str:
    if error is None:
        return "OK"
    for cls in type(error).__mro__:
        if cls in STATUS_NAMES:
            return STATUS_NAMES[cls]
    return "INTERNAL" if isinstance(error, MedaiError | Exception) else "CANCELLED"


class PayloadSealer(Protocol):
    """Keeps an original payload encrypted under the audit record's id (`libs.stores.payloads`)."""

    async def seal(self, record_id: str, purpose: str, payload: bytes) -> None: ...


class RequestAudit:
    def __init__(self, log: AuditLog | None, digester: Digester, caller: Caller, action: str, *,
                 model_id: str = "", purpose: str = "", inputs: object = None,
                 vault: PayloadSealer | None = None) -> None:
        self._log = log
        self._vault = vault
        self._inputs = inputs
        self._digester = digester
        self._caller = caller
        self._action = action
        self.model_id = safe_token(model_id)
        self.model_version = ""
        self._purpose = safe_token(purpose)
        self._input_digest = digester.digest(inputs) if log is not None else ""
        self._output_digest = ""
        self.counts: dict[str, int] = {}
        self._started = time.perf_counter()

    def found(self, entities: Iterable[DetectedEntity]) -> None:
        for entity in entities:
            self.counts[entity.entity_type] = self.counts.get(entity.entity_type, 0) + 1

    def add_counts(self, counts: dict[str, int]) -> None:
        for entity_type, count in counts.items():
            self.counts[entity_type] = self.counts.get(entity_type, 0) + count

    def answered(self, outputs: object, model_version: str = "") -> None:
        self._output_digest = self._digester.digest(outputs) if self._log is not None else ""
        self.model_version = model_version or self.model_version

    async def started(self) -> None:
        """The request record; with payload storage, the original inputs sealed under its id."""
        event = await self._write("started", "")
        if event is not None and self._vault is not None and self._inputs is not None:
            payload = json.dumps(self._inputs, sort_keys=True).encode()
            await self._vault.seal(event.event_id, self._purpose or self._action, payload)

    async def __aenter__(self) -> RequestAudit:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        outcome = "success" if error is None else "failure"
        if error is None:
            await self._write(outcome, "OK")
            return
        # A failing request is recorded even when its task is being cancelled.
        await asyncio.shield(self._write(outcome, status_name(error), raising=False))

    async def _write(self, outcome: str, status: str, *, raising: bool = True) -> AuditEvent | None:
        if self._log is None:
            return None
        event = event_for(self._caller, self._action, outcome, model_id=self.model_id,
                          model_version=self.model_version, status_code=status, purpose=self._purpose,
                          counts=self.counts, input_digest=self._input_digest, output_digest=self._output_digest,
                          latency_seconds=time.perf_counter() - self._started if outcome != "started" else 0.0)
        try:
            await self._log.write(event)
        except MedaiError:
            if raising:
                raise
            return None
        return event
