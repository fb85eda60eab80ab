"""The append-only, hash-chained audit store over `libs.stores.db.Database` (PostgreSQL or SQLite).

Each row carries the previous row's hash and its own: SHA-256 over a canonical encoding
(sorted-key JSON) of every field but its own hash. UPDATE, DELETE (and TRUNCATE) are refused by
triggers in both databases. `verify` walks the chain and names the first row that does not
verify: a modified row fails its own hash, a deleted, inserted or reordered one breaks the
sequence or the link. Signed checkpoints (Ed25519 over sequence and hash, in their own
append-only table) make a rewritten chain detectable too. Rows hold no PHI: entity counts by
type and keyed digests only.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from libs.stores.db import Database, Transaction

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key serialising appends across processes (any constant; "audit" in ASCII).
CHAIN_LOCK_KEY = 0x6175646974
_FIELDS = ("event_id", "recorded_at", "request_id", "trace_id", "principal_id", "role", "client_address", "action",
           "model_id", "model_version", "outcome", "status_code", "purpose", "phi_entity_counts", "input_digest",
           "output_digest", "latency_seconds")
_COLUMNS = ("sequence", *_FIELDS, "previous_hash", "record_hash")

_TABLES = (
    f"""CREATE TABLE IF NOT EXISTS audit_records (
        sequence BIGINT PRIMARY KEY,
        {', '.join(f'{name} TEXT NOT NULL' for name in _FIELDS if name != 'event_id')},
        event_id TEXT NOT NULL UNIQUE,
        previous_hash TEXT NOT NULL,
        record_hash TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit_checkpoints (
        sequence BIGINT PRIMARY KEY,
        record_hash TEXT NOT NULL,
        signed_at TEXT NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_records_request ON audit_records (request_id)",
)
_APPEND_ONLY = ("audit_records", "audit_checkpoints")
_SQLITE_TRIGGERS = tuple(
    f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"""
    for table in _APPEND_ONLY for verb in ("UPDATE", "DELETE")
)
_POSTGRES_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION medai_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only'; END $$""",
    *(f"""CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
          FOR EACH ROW EXECUTE FUNCTION medai_append_only()""" for table in _APPEND_ONLY),
    *(f"""CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
          FOR EACH STATEMENT EXECUTE FUNCTION medai_append_only()""" for table in _APPEND_ONLY),
)
TRIGGERS = {"sqlite": _SQLITE_TRIGGERS, "postgresql": _POSTGRES_TRIGGERS}


@dataclass(frozen=True)
class AuditEvent:
    """What happened, before it is chained (also what the spool keeps while the database is away)."""

    event_id: str
    recorded_at: str  # ISO-8601 UTC
    action: str
    outcome: str
    request_id: str = ""
    trace_id: str = ""
    principal_id: str = ""
    role: str = ""
    client_address: str = ""
    model_id: str = ""
    model_version: str = ""
    status_code: str = ""
    purpose: str = ""
    phi_entity_counts: Mapping[str, int] = field(default_factory=dict)
    input_digest: str = ""
    output_digest: str = ""
    latency_seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "phi_entity_counts": dict(self.phi_entity_counts)}, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> AuditEvent:
        return cls(**json.loads(line))


@dataclass(frozen=True)
class AuditRecord:
    """A chained row."""

    sequence: int
    event: AuditEvent
    previous_hash: str
    record_hash: str


@dataclass(frozen=True)
class Checkpoint:
    sequence: int
    record_hash: str
    signed_at: str
    key_id: str
    signature: str

    def message(self) -> bytes:
        """What is signed: the chain position and its hash."""
        return f"medai-audit-checkpoint:{self.sequence}:{self.record_hash}".encode()


@dataclass(frozen=True)
class Verification:
    intact: bool
    records_checked: int
    checkpoints_checked: int = 0
    first_broken_sequence: int = 0
    reason: str = ""


def _stored_fields(event: AuditEvent) -> dict[str, str]:
    """Every field as the text stored (and hashed): counts as canonical JSON, latency to the microsecond."""
    values = asdict(event)
    values["phi_entity_counts"] = json.dumps(dict(sorted(event.phi_entity_counts.items())), separators=(",", ":"))
    values["latency_seconds"] = f"{event.latency_seconds:.6f}"
    return {name: str(values[name]) for name in _FIELDS}


def record_hash(sequence: int, stored: Mapping[str, str], previous_hash: str) -> str:
    """SHA-256 of the canonical encoding of a row (every column but record_hash)."""
    canonical = json.dumps({"sequence": sequence, **stored, "previous_hash": previous_hash}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


_INSERT = f"INSERT INTO audit_records ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
_ID_CHUNK = 500  # event ids per existence query (a replay may hold thousands)


async def _stored_event_ids(tx: Transaction, event_ids: list[str]) -> set[str]:
    """Which of these event ids the chain already holds."""
    found: set[str] = set()
    for first in range(0, len(event_ids), _ID_CHUNK):
        chunk = event_ids[first:first + _ID_CHUNK]
        marks = ", ".join(["%s"] * len(chunk))
        rows = await tx.fetchall(f"SELECT event_id FROM audit_records WHERE event_id IN ({marks})", chunk)
        found.update(row[0] for row in rows)
    return found


def _event_from_row(stored: Mapping[str, str]) -> AuditEvent:
    values = dict(stored)
    return AuditEvent(**{**values, "phi_entity_counts": json.loads(values["phi_entity_counts"]),
                         "latency_seconds": float(values["latency_seconds"])})


def _row(row: tuple) -> tuple[int, dict[str, str], str, str]:
    sequence, *middle, previous, own = row
    return int(sequence), dict(zip(_FIELDS, middle, strict=True)), previous, own


class AuditStore:
    """Append events to the chain, read them back, verify the chain and its signed checkpoints."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def migrate(self) -> None:
        for statement in _TABLES:
            await self.db.execute(statement)
        for statement in TRIGGERS[self.db.dialect]:
            await self.db.execute(statement)

    async def append(self, event: AuditEvent) -> AuditRecord | None:
        """Chain one event; None when an event with its id is already stored (a replay)."""
        records = await self.append_all([event])
        return records[0] if records else None

    async def append_all(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Chain events in order in one transaction (one head read, one insert round trip), skipping those
        already stored (a replay); the records added."""
        if not events:
            return []
        async with self.db.transaction(lock_key=CHAIN_LOCK_KEY) as tx:
            seen = await _stored_event_ids(tx, [event.event_id for event in events])
            head = await tx.fetchone("SELECT sequence, record_hash FROM audit_records ORDER BY sequence DESC LIMIT 1")
            sequence, previous = (int(head[0]), head[1]) if head else (0, GENESIS_HASH)
            records: list[AuditRecord] = []
            rows: list[tuple[object, ...]] = []
            for event in events:
                if event.event_id in seen:
                    continue
                seen.add(event.event_id)
                sequence += 1
                stored = _stored_fields(event)
                own = record_hash(sequence, stored, previous)
                records.append(AuditRecord(sequence, event, previous, own))
                rows.append((sequence, *stored.values(), previous, own))
                previous = own
            if rows:
                await tx.execute_many(_INSERT, rows)
        return records

    async def list(self, *, after_sequence: int = 0, limit: int = 100, request_id: str = "") -> list[AuditRecord]:
        where, params = "sequence > %s", [after_sequence]
        if request_id:
            where += " AND request_id = %s"
            params.append(request_id)
        rows = await self.db.fetchall(
            f"SELECT {', '.join(_COLUMNS)} FROM audit_records WHERE {where} ORDER BY sequence LIMIT %s",
            (*params, limit))
        records = []
        for row in rows:
            sequence, stored, previous, own = _row(row)
            records.append(AuditRecord(sequence, _event_from_row(stored), previous, own))
        return records

    async def head(self) -> tuple[int, str]:
        row = await self.db.fetchone("SELECT sequence, record_hash FROM audit_records ORDER BY sequence DESC LIMIT 1")
        return (int(row[0]), row[1]) if row else (0, GENESIS_HASH)

    async def add_checkpoint(self, checkpoint: Checkpoint) -> None:
        await self.db.execute(
            "INSERT INTO audit_checkpoints (sequence, record_hash, signed_at, key_id, signature) "
            "VALUES (%s, %s, %s, %s, %s)",
            (checkpoint.sequence, checkpoint.record_hash, checkpoint.signed_at, checkpoint.key_id,
             checkpoint.signature))

    async def checkpoints(self) -> list[Checkpoint]:
        rows = await self.db.fetchall(
            "SELECT sequence, record_hash, signed_at, key_id, signature FROM audit_checkpoints ORDER BY sequence")
        return [Checkpoint(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    async def verify(self, signature_valid: Callable[[Checkpoint], bool] | None = None,
                     batch: int = 1000) -> Verification:
        """Walk the chain from the first row; then check each checkpoint's signature and that the
        chain still holds the hash it signed (a rewritten or truncated chain does not)."""
        expected, previous, checked = 1, GENESIS_HASH, 0
        hashes: dict[int, str] = {}
        checkpoints = await self.checkpoints()
        wanted = {c.sequence for c in checkpoints}
        while True:
            rows = await self.db.fetchall(
                f"SELECT {', '.join(_COLUMNS)} FROM audit_records WHERE sequence >= %s ORDER BY sequence LIMIT %s",
                (expected, batch))
            for row in rows:
                sequence, stored, link, own = _row(row)
                broken = _first_fault(sequence, expected, stored, link, own, previous)
                if broken:
                    return Verification(False, checked, 0, expected if sequence > expected else sequence, broken)
                if sequence in wanted:
                    hashes[sequence] = own
                checked += 1
                expected, previous = sequence + 1, own
            if len(rows) < batch:
                break
        for checkpoint in checkpoints:
            if signature_valid is not None and not signature_valid(checkpoint):
                return Verification(False, checked, 0, checkpoint.sequence, "checkpoint signature does not verify")
            if hashes.get(checkpoint.sequence) != checkpoint.record_hash:
                return Verification(False, checked, 0, checkpoint.sequence,
                                    "record differs from the signed checkpoint (chain rewritten or truncated)")
        return Verification(True, checked, len(checkpoints) if signature_valid is not None else 0)


def _first_fault(sequence: int, expected: int, stored: Mapping[str, str], link: str, own: str,
                 previous: str) -> str:
    if sequence != expected:
        return f"sequence gap: expected {expected}, found {sequence} (a record was deleted)"
    if link != previous:
        return "previous_hash does not match the preceding record (records inserted, deleted or reordered)"
    if record_hash(sequence, stored, link) != own:
        return "record_hash does not match the record's content (record modified)"
    return ""


def new_event(action: str, outcome: str, *, recorded_at: datetime | None = None, **fields) -> AuditEvent:
    """An event stamped now (or when it happened, if given) with a fresh id."""
    import uuid

    moment = (recorded_at or datetime.now(UTC)).astimezone(UTC)
    return AuditEvent(event_id=uuid.uuid4().hex, recorded_at=moment.isoformat(timespec="microseconds"),
                      action=action, outcome=outcome, **fields)



