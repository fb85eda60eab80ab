"""Refused calls leave audit records (bounded), and API keys keep working from a bounded stale cache while
the key store is down (a refused key stays refused); an unknown key then answers UNAVAILABLE, fast."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from libs.errors import NotReady, Overloaded, PermissionDenied, StoreUnavailable, Unauthenticated
from libs.stores.keys import KeyLimits
from libs.stores.ratelimit import InMemoryRateLimitStore
from libs.validation import GenerationParams
from services.gateway.core.auth import Authenticator, KeyCachePolicy
from services.gateway.core.model import PredictCall, Refusal
from services.gateway.core.quota import Quotas
from services.gateway.core.refusals import RefusalAudit, RefusalAuditPolicy
from tests.unit.gateway.conftest import build_gateway, meta

NOTE = "Patient Jane Roe, 617-555-0142"


@dataclass
class RecordingRefusals:
    records: list[Refusal] = field(default_factory=list)

    def record(self, refusal: Refusal) -> None:
        self.records.append(refusal)

    async def close(self) -> None:
        pass


def predict(model_id: str = "gen-1") -> PredictCall:
    return PredictCall(model_id=model_id, inputs=NOTE, params=GenerationParams(temperature=0))


async def test_401_403_and_429_are_recorded_without_content(key_store, compliance):
    refusals = RecordingRefusals()
    gateway = build_gateway(key_store, compliance, quotas=Quotas(InMemoryRateLimitStore()), refusals=refusals)
    auditor_key, auditor = await key_store.create(name="a", role="auditor")
    limited_key, limited = await key_store.create(name="l", role="admin", limits=KeyLimits(requests_per_minute=1))
    await gateway.list_models(meta(limited), "")  # fills the catalogue, and the limited key's minute
    with pytest.raises(Unauthenticated):
        await gateway.predict(meta(None), predict())
    with pytest.raises(Unauthenticated):
        await gateway.predict(meta("msk_0123456789ab_wrongsecret"), predict())
    with pytest.raises(PermissionDenied):
        await gateway.predict(meta(auditor), predict())
    with pytest.raises(Overloaded):
        await gateway.predict(meta(limited), predict("emb-1"))
    with pytest.raises(Unauthenticated):
        await gateway.predict(meta(None), predict(NOTE))  # an unknown "model id" is never recorded
    assert [(r.status_code, r.action, r.principal_id, r.claimed_key_id, r.role, r.model_id)
            for r in refusals.records] == [
        ("UNAUTHENTICATED", "predict", "", "", "", "gen-1"),
        ("UNAUTHENTICATED", "predict", "", "0123456789ab", "", "gen-1"),
        ("PERMISSION_DENIED", "predict", auditor_key.key_id, "", "auditor", "gen-1"),
        ("RESOURCE_EXHAUSTED", "predict", limited_key.key_id, "", "admin", "emb-1"),
        ("UNAUTHENTICATED", "predict", "", "", "", ""),
    ]
    assert all(r.request_id == "req-1" and r.client_address == "10.0.0.9" for r in refusals.records)
    assert NOTE not in repr(refusals.records)


async def test_errors_compliance_reported_are_not_recorded_twice(key_store, compliance):
    refusals = RecordingRefusals()
    gateway = build_gateway(key_store, compliance, refusals=refusals)
    _, key = await key_store.create(name="k", role="admin")
    refused_downstream = Overloaded("model busy")
    refused_downstream.reported_by_peer = True  # e.g. the worker's queue was full: compliance audited it

    async def busy(*args):
        raise refused_downstream

    compliance.predict = busy
    with pytest.raises(Overloaded):
        await gateway.predict(meta(key), predict())
    assert refusals.records == []


class FlakyKeys:
    """A key store that can be switched off, counting lookups."""

    def __init__(self, store) -> None:
        self._store, self.down, self.lookups = store, False, 0

    async def authenticate(self, plaintext):
        self.lookups += 1
        if self.down:
            raise StoreUnavailable("API key store")
        return await self._store.authenticate(plaintext)


async def test_known_keys_keep_their_state_while_the_key_store_is_down(key_store):
    keys = FlakyKeys(key_store)
    now = [100.0]
    auth = Authenticator(keys, KeyCachePolicy(ttl_seconds=1, stale_seconds=300, retry_seconds=1),
                         clock=lambda: now[0])
    key, good = await key_store.create(name="good", role="admin")
    revoked_key, revoked = await key_store.create(name="bad", role="admin")
    await key_store.revoke(revoked_key.key_id)
    assert (await auth.authenticate(f"Bearer {good}")).key_id == key.key_id
    with pytest.raises(Unauthenticated):
        await auth.authenticate(f"Bearer {revoked}")
    keys.down = True
    now[0] += 10  # past the fresh TTL: the store is asked, fails, and the last known state answers
    assert (await auth.authenticate(f"Bearer {good}")).key_id == key.key_id
    with pytest.raises(Unauthenticated):
        await auth.authenticate(f"Bearer {revoked}")  # still refused
    asked = keys.lookups
    assert (await auth.authenticate(f"Bearer {good}")).key_id == key.key_id
    assert keys.lookups == asked  # within retry_seconds of a failure the store is not asked again
    _, unknown = await key_store.create(name="new", role="admin")
    with pytest.raises(NotReady, match="API key store unavailable"):
        await auth.authenticate(f"Bearer {unknown}")  # never seen: no state to fall back on
    now[0] += 400
    with pytest.raises(NotReady):
        await auth.authenticate(f"Bearer {good}")  # too stale to trust
    keys.down = False
    now[0] += 2
    assert (await auth.authenticate(f"Bearer {good}")).key_id == key.key_id


@dataclass
class Sink:
    batches: list[list[Refusal]] = field(default_factory=list)
    failing: bool = False

    async def record_refusals(self, refusals):
        if self.failing:
            raise NotReady("compliance service unavailable")
        self.batches.append(list(refusals))


def refusal(source: str, number: int = 0) -> Refusal:
    return Refusal(request_id=f"r{number}", action="predict", status_code="UNAUTHENTICATED",
                   client_address=source)


async def test_refusal_records_are_bounded_per_source_and_shipped_in_batches():
    sink, now = Sink(), [0.0]
    audit = RefusalAudit(sink, RefusalAuditPolicy(per_source_per_minute=3, total_per_minute=100, batch_size=2),
                         clock=lambda: now[0])
    for number in range(10):
        audit.record(refusal("10.0.0.1", number))  # a flood from one source
    audit.record(refusal("10.0.0.2"))
    assert audit.pending == 4  # 3 of the flood, and the other source's one
    sink.failing = True
    assert not await audit._ship_batch()  # compliance away: nothing is lost
    assert audit.pending == 4
    sink.failing = False
    await audit.close()
    assert [[r.request_id for r in batch] for batch in sink.batches] == [["r0", "r1"], ["r2", "r0"]]
    now[0] += 60  # a minute later the flood's source is recorded again
    audit.record(refusal("10.0.0.1", 11))
    assert audit.pending == 1


def test_refusal_records_stop_at_the_total_cap():
    audit = RefusalAudit(Sink(), RefusalAuditPolicy(per_source_per_minute=5, total_per_minute=7),
                         clock=time.monotonic)
    for number in range(20):
        audit.record(refusal(f"10.0.0.{number}"))
    assert audit.pending == 7


async def test_during_an_outage_the_store_is_asked_again_in_the_background_never_on_the_call(key_store):
    keys = FlakyKeys(key_store)
    now = [100.0]
    auth = Authenticator(keys, KeyCachePolicy(ttl_seconds=1, stale_seconds=300, retry_seconds=1),
                         clock=lambda: now[0])
    key, good = await key_store.create(name="good", role="admin")
    await auth.authenticate(f"Bearer {good}")
    keys.down, now[0] = True, now[0] + 5
    await auth.authenticate(f"Bearer {good}")  # the failure that opens the circuit
    asked = keys.lookups
    now[0] += 2  # past retry_seconds: the next call is answered at once and the store probed meanwhile
    assert (await auth.authenticate(f"Bearer {good}")).key_id == key.key_id
    assert keys.lookups == asked
    await asyncio.sleep(0.01)
    assert keys.lookups == asked + 1  # the probe ran, and failed
    keys.down, now[0] = False, now[0] + 2
    await auth.authenticate(f"Bearer {good}")
    await asyncio.sleep(0.01)  # this probe succeeds and closes the circuit
    await key_store.revoke(key.key_id)
    now[0] += 2
    with pytest.raises(Unauthenticated):
        await auth.authenticate(f"Bearer {good}")  # the store answers on the call again: revocation holds
