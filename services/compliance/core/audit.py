"""The audit trail of the compliance service: one record per request and outcome, never lost.

Records go to the hash-chained store (`libs.stores.audit`). When the database cannot take one,
it goes to a durable local spool (append-only JSON lines, fsync'd) and every later record
follows it there until a background replay has appended the spool, in order, to the chain
(records carry ids, so a replay cut short is simply repeated). With `fail_closed`, a record
that can be written neither to the database nor to the spool refuses the request
(NotReady -> UNAVAILABLE). Every `checkpoint_every` records an Ed25519 signature over the
chain head is stored. Records hold no PHI: entity counts by type and keyed (HMAC) digests.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import re
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from libs.errors import NotReady, PermissionDenied, StoreUnavailable
from libs.security.signing import Signer, Verifier
from libs.stores.audit import AuditEvent, AuditRecord, AuditStore, Checkpoint, Verification, new_event
from libs.stores.db import UNAVAILABLE_ERRORS
from services.compliance.core.types import Caller, RefusedCall

log = logging.getLogger(__name__)
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:/@\[\]-]{1,128}$")
_KEY_ID = re.compile(r"^[0-9a-f]{12}$")
REFUSED_OUTCOME = "denied"

AUDIT_RECORDS = Counter("medai_audit_records_total", "Audit records written, by where they went", ["destination"])
AUDIT_LOST = Counter("medai_audit_records_lost_total", "Audit records written neither to the database nor the spool")
AUDIT_SPOOLED = Gauge("medai_audit_spool_records", "Audit records waiting in the local spool")
AUDIT_WRITE_SECONDS = Histogram(
    "medai_audit_write_seconds", "Time to write audit records (one call, one or more records), by where they went",
    ["destination"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DESTINATIONS = ("database", "spool", "replayed")
for _destination in DESTINATIONS:  # exported at 0 from the start
    AUDIT_RECORDS.labels(_destination)
for _destination in DESTINATIONS[:2]:
    AUDIT_WRITE_SECONDS.labels(_destination)
# Told of every record as it is first written, and where it went ("database" or "spool"): audit.log.
AuditMirror = Callable[[AuditEvent, str], None]
UNAVAILABLE_MESSAGE = "audit log unavailable"
STORE_NAME = "audit log"


class Spool:
    """Append-only JSON lines, each fsync'd before `append` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, event: AuditEvent) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (event.to_json() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[AuditEvent]:
        """The spooled events in order (a last line cut short by a crash is left out)."""
        try:
            lines = self.path.read_text().splitlines()
        except OSError:  # none yet, or unreadable (then writes fail too, and fail-closed applies)
            return []
        events = []
        for line in lines:
            with contextlib.suppress(ValueError, TypeError):
                events.append(AuditEvent.from_json(line))
        return events

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


@dataclass(frozen=True)
class AuditPolicy:
    fail_closed: bool = False
    retry_seconds: float = 5.0
    checkpoint_every: int = 100


StoreOpener = Callable[[], Awaitable[AuditStore]]


class AuditLog:
    """Writes records (database, else spool), replays the spool, signs checkpoints, answers reads."""

    def __init__(self, open_store: StoreOpener, spool: Spool, policy: AuditPolicy, signer: Signer | None = None,
                 verifier: Verifier | None = None, mirror: AuditMirror | None = None) -> None:
        self._open_store = open_store
        self._mirror = mirror
        self._spool = spool
        self._policy = policy
        self._signer = signer
        self._verifier = verifier
        self._store: AuditStore | None = None
        self._lock = asyncio.Lock()
        self._connecting = asyncio.Lock()
        self._spooled = len(spool.read())
        self._retry_at = 0.0
        self._closing: set[asyncio.Future] = set()
        self._queue: list[tuple[list[AuditEvent], asyncio.Future[bool]]] = []
        self._flusher: asyncio.Future | None = None
        AUDIT_SPOOLED.set(self._spooled)

    @property
    def spooled(self) -> int:
        return self._spooled

    async def start(self) -> None:
        """Open the store and replay what an earlier run spooled; a database that is away is retried later."""
        await self.replay()

    async def close(self) -> None:
        if self._flusher is not None:  # what writers queued goes out first
            await asyncio.shield(self._flusher)
        if self._store is not None:
            await self._store.db.close()
            self._store = None

    async def write(self, event: AuditEvent) -> None:
        """Chain the event, or spool it; NotReady when neither works and the policy is fail-closed."""
        await self.write_all([event])

    async def write_all(self, events: list[AuditEvent]) -> None:
        """`write` for several events at once, in order.

        Group commit: the events of concurrent writers wait in a queue while a transaction is under way and
        then go to the chain together in the next one, in the order they were written; each writer returns
        once its own events are durable. The flush runs as a task of its own, so a writer cancelled while
        waiting leaves the others' events to be written all the same."""
        if not events:
            return
        written = asyncio.get_running_loop().create_future()
        self._queue.append((events, written))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        if not await asyncio.shield(written) and self._policy.fail_closed:
            raise NotReady(UNAVAILABLE_MESSAGE)

    async def _flush(self) -> None:
        """Write what the queue holds, one transaction per round, until it is empty."""
        async with self._lock:
            while self._queue:
                batch, self._queue = self._queue, []
                events = [event for queued, _ in batch for event in queued]
                lost = {event.event_id for event in events}  # until known to be written
                try:
                    lost = await self._commit(events)
                except Exception as error:  # not the database's failure (that spools): a fault here
                    AUDIT_LOST.inc(len(events))
                    log.error("audit records written nowhere", extra={"error": type(error).__name__,
                                                                       "records": len(events)})
                finally:
                    for queued, written in batch:
                        if not written.done():
                            written.set_result(not any(event.event_id in lost for event in queued))

    async def _commit(self, events: list[AuditEvent]) -> set[str]:
        """Chain the events in one transaction, or spool them; the ids of those written nowhere."""
        started = time.perf_counter()
        if not self._spooled and await self._connected():
            try:
                records = await self._store.append_all(events)
            except Exception as error:  # the database went away: spool from now on
                self._database_down(error)
            else:
                self._written(events, "database", started)
                await self._maybe_checkpoint(records)
                return set()
        lost = {event.event_id for event in events if not self._to_spool(event)}
        AUDIT_WRITE_SECONDS.labels("spool").observe(time.perf_counter() - started)
        return lost

    def _written(self, events: list[AuditEvent], destination: str, started: float) -> None:
        AUDIT_WRITE_SECONDS.labels(destination).observe(time.perf_counter() - started)
        AUDIT_RECORDS.labels(destination).inc(len(events))
        for event in events:
            self._mirrored(event, destination)

    def _mirrored(self, event: AuditEvent, destination: str) -> None:
        if self._mirror is None:
            return
        try:
            self._mirror(event, destination)
        except Exception as error:  # audit.log is a copy for SIEMs: the record itself is safe
            log.warning("audit.log line not written", extra={"error": type(error).__name__})

    async def replay(self) -> int:
        """Append spooled events to the chain in order; how many were replayed (0 if the database is away)."""
        if not await self._connected():  # not under the write lock: connecting may take the whole timeout
            return 0
        async with self._lock:
            if self._store is None:
                return 0
            events = self._spool.read()
            if not events:
                self._spooled = 0
                AUDIT_SPOOLED.set(0)
                return 0
            try:
                added = len(await self._store.append_all(events))
            except Exception as error:
                self._database_down(error)
                return 0
            self._spool.clear()
            self._spooled = 0
            AUDIT_SPOOLED.set(0)
            AUDIT_RECORDS.labels("replayed").inc(added)
            log.info("audit spool replayed", extra={"records": added})
            await self._maybe_checkpoint(None)
            return added

    async def run(self) -> None:
        """Background job: replay the spool while it holds records (cancel to stop)."""
        while True:
            await asyncio.sleep(self._policy.retry_seconds)
            if self._spooled:
                await self.replay()

    async def list(self, caller: Caller, *, after_sequence: int, limit: int, request_id: str) -> list[AuditRecord]:
        _require(caller, "audit:read")
        async with self._reading() as store:
            return await store.list(after_sequence=after_sequence, limit=limit, request_id=request_id)

    async def verify(self, caller: Caller) -> Verification:
        _require(caller, "audit:verify")
        async with self._reading() as store:
            return await store.verify(self._signature_valid if self._verifier is not None else None)

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[AuditStore]:
        """The store for a read; StoreUnavailable (UNAVAILABLE, never INTERNAL) while the database is away."""
        if not await self._connected():
            raise StoreUnavailable(STORE_NAME)
        try:
            yield self._store
        except UNAVAILABLE_ERRORS as error:
            self._database_down(error)
            raise StoreUnavailable(STORE_NAME) from None

    async def checkpoint(self) -> Checkpoint | None:
        """Sign the current chain head now (also done every `checkpoint_every` records)."""
        if self._signer is None or not await self._connected():
            return None
        sequence, head = await self._store.head()
        if not sequence:
            return None
        checkpoint = Checkpoint(sequence, head, datetime.now(UTC).isoformat(), self._signer.key_id, "")
        checkpoint = Checkpoint(sequence, head, checkpoint.signed_at, checkpoint.key_id,
                                self._signer.sign(checkpoint.message()))
        with contextlib.suppress(Exception):  # one already there for this sequence
            await self._store.add_checkpoint(checkpoint)
        return checkpoint

    def _signature_valid(self, checkpoint: Checkpoint) -> bool:
        return self._verifier.valid(checkpoint.key_id, checkpoint.message(), checkpoint.signature)

    async def _maybe_checkpoint(self, records: list[AuditRecord] | None) -> None:
        """Sign the head when the records just added reached a multiple of `checkpoint_every` (always after a
        replay: records=None)."""
        every = self._policy.checkpoint_every
        if self._signer is None or not every:
            return
        if records is None or any(record.sequence % every == 0 for record in records):
            try:
                await self.checkpoint()
            except Exception as error:
                log.warning("audit checkpoint failed", extra={"error": type(error).__name__})

    async def _connected(self) -> bool:
        if self._store is not None:
            return True
        async with self._connecting:
            if self._store is not None:
                return True
            if time.monotonic() < self._retry_at:
                return False
            try:
                self._store = await self._open_store()
            except Exception as error:
                self._database_down(error)
                return False
        return True

    def _database_down(self, error: BaseException) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            closing = asyncio.ensure_future(_quietly_close(store))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        self._retry_at = time.monotonic() + self._policy.retry_seconds
        log.warning("audit database unavailable, spooling", extra={"error": type(error).__name__})

    def _to_spool(self, event: AuditEvent) -> bool:
        """Spool the event; False when it could not be written there either."""
        try:
            self._spool.append(event)
        except OSError as error:
            AUDIT_LOST.inc()
            log.error("audit record written nowhere", extra={"error": type(error).__name__,
                                                               "request_id": event.request_id})
            return False
        self._spooled += 1
        AUDIT_SPOOLED.set(self._spooled)
        AUDIT_RECORDS.labels("spool").inc()
        self._mirrored(event, "spool")
        return True


async def _quietly_close(store: AuditStore) -> None:
    with contextlib.suppress(Exception):
        await store.db.close()


def _require(caller: Caller, permission: str) -> None:
    if permission not in caller.permissions:
        raise PermissionDenied()


class Digester:
    """Keyed digests (HMAC-SHA256 with the server pepper) of what a request sent and received."""

    def __init__(self, pepper: bytes) -> None:
        self._pepper = pepper

    def digest(self, value: object) -> str:
        if value is None:
            return ""
        return hmac.new(self._pepper, _material(value), hashlib.sha256).hexdigest()


def _material(value: object) -> bytes:
    """What a digest covers: text as UTF-8, vectors as their float64 bytes (writing hundreds of numbers out
    in JSON cost more than the rest of the record), anything else as canonical JSON."""
    if isinstance(value, str):
        return value.encode()
    if _vectors(value):
        return b"vectors:" + b"".join(len(vector).to_bytes(4, "little") + array("d", vector).tobytes()
                                      for vector in value)
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _vectors(value: object) -> bool:
    """A list of non-empty lists of floats (an embedding answer)."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(item, list) and item and type(item[0]) is float for item in value)


def current_trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else ""


def safe_token(value: str) -> str:
    """A client-sent identifier fit for an audit row (never free text), else ""."""
    return value if _SAFE_TOKEN.match(value or "") else ""


def event_for(caller: Caller, action: str, outcome: str, *, model_id: str = "", model_version: str = "",
              status_code: str = "", purpose: str = "", counts: Mapping[str, int] | None = None,
              input_digest: str = "", output_digest: str = "", latency_seconds: float = 0.0) -> AuditEvent:
    """An event about the caller's request (who, from where, what, how it ended)."""
    return new_event(
        action, outcome, request_id=caller.request_id, trace_id=current_trace_id(),
        principal_id=caller.principal_id, role=caller.role, client_address=safe_token(caller.client_address),
        model_id=model_id[:256], model_version=model_version, status_code=status_code, purpose=purpose[:256],
        phi_entity_counts=dict(counts or {}), input_digest=input_digest, output_digest=output_digest,
        latency_seconds=latency_seconds)


def refusal_events(refusals: Iterable[RefusedCall]) -> list[AuditEvent]:
    """Audit events of calls the gateway refused: who (the key, or "unverified:<id>" of a key that did not
    authenticate, or "anonymous"), from where, what was asked, which refusal; identifiers only."""
    return [
        new_event(
            safe_token(refused.action) or "unknown", REFUSED_OUTCOME, recorded_at=refused.refused_at,
            request_id=safe_token(refused.request_id), trace_id=current_trace_id(),
            principal_id=_refused_principal(refused), role=safe_token(refused.role),
            client_address=safe_token(refused.client_address), model_id=safe_token(refused.model_id),
            status_code=safe_token(refused.status_code))
        for refused in refusals
    ]


_EVENT_FIELDS = tuple(field.name for field in dataclasses.fields(AuditEvent))


def audit_line(event: AuditEvent, destination: str) -> str:
    """The audit.log line of a record (for SIEMs): the record's own fields, identifiers only, never
    request content; free-text fields a client chose are kept only when they are plain tokens."""
    fields = {name: getattr(event, name) for name in sorted(_EVENT_FIELDS)}
    fields["phi_entity_counts"] = dict(event.phi_entity_counts)
    fields["purpose"] = safe_token(event.purpose)
    return json.dumps({"log": "audit", "destination": destination, **fields}, sort_keys=False)


def _refused_principal(refused: RefusedCall) -> str:
    if refused.principal_id:
        return safe_token(refused.principal_id)
    if _KEY_ID.match(refused.claimed_key_id):
        return f"unverified:{refused.claimed_key_id}"
    return "anonymous"
