"""Audit, re-identification and session placeholders through a real compliance server (spy worker),
and spool replay across a PostgreSQL outage (a TCP proxy in front of the real server is stopped)."""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import psycopg
import pytest

from libs.config import AppSettings, MedicalSettings
from libs.errors import NotReady
from libs.stores.audit import AuditStore, new_event
from libs.stores.db import open_database
from medai.common.v1 import inference_pb2
from medai.compliance.v1 import compliance_pb2
from services.compliance.core.audit import AuditLog, AuditPolicy, Spool
from tests.fixtures.compliance import running_compliance
from tests.integration.test_compliance_service import predict_request
from tests.support.databases import POSTGRES_URL, postgres_available
from tests.support.spy_worker import CHAT_MODEL, GEN_MODEL, running_spy
from tests.support.tcp_proxy import TcpProxy

NOTE = "John Smith (SSN 536-22-8145, phone 617-555-0123) has a cough."
PHI = ("John Smith", "536-22-8145", "617-555-0123")
AUDITOR = inference_pb2.Caller(request_id="aud-1", principal_id="key-9", role="auditor",
                               permissions=["audit:read", "audit:verify"])


def caller(*permissions: str, request_id: str = "req-1") -> inference_pb2.Caller:
    return inference_pb2.Caller(request_id=request_id, principal_id="key-7", role="clinician",
                                client_address="10.1.2.3", permissions=list(permissions))


@pytest.fixture
async def spy():
    async with running_spy() as worker:
        yield worker


async def test_each_request_leaves_start_and_outcome_records_without_phi(spy, presidio_deidentifier, tmp_path):
    app = AppSettings(environment="test", data_dir=tmp_path, state_dir=tmp_path)
    async with running_compliance([spy.address], presidio_deidentifier, app=app) as compliance:
        await compliance.stub.Predict(predict_request(GEN_MODEL, NOTE, caller=caller(), purpose="TREAT"), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError):
            await compliance.stub.Predict(predict_request("", NOTE, caller=caller(request_id="req-2")), timeout=30)
        listed = await compliance.stub.ListAuditRecords(compliance_pb2.ProxyListAuditRecordsRequest(
            caller=AUDITOR, request=inference_pb2.ListAuditRecordsRequest(limit=10)))
        verified = await compliance.stub.VerifyAudit(compliance_pb2.ProxyVerifyAuditRequest(caller=AUDITOR))
    records = listed.records
    assert [(r.request_id, r.outcome, r.status_code) for r in records] == [
        ("req-1", "started", ""), ("req-1", "success", "OK"), ("req-2", "failure", "INVALID_ARGUMENT")]
    done = records[1]
    assert (done.action, done.model_id, done.model_version, done.purpose, done.role, done.client_address) == (
        "predict", GEN_MODEL, "spy-1", "TREAT", "clinician", "10.1.2.3")
    assert dict(done.phi_entity_counts) == {"PERSON": 1, "US_SSN": 1, "PHONE_NUMBER": 1}
    assert len(done.input_digest) == 64 and len(done.output_digest) == 64 and done.latency_seconds > 0
    assert records[1].previous_hash == records[0].record_hash
    assert verified.intact and verified.records_checked >= 3
    stored = (tmp_path / "medai.db").read_bytes()
    assert all(value.encode() not in stored for value in PHI)


async def test_reidentification_is_for_callers_with_the_permission(spy, presidio_deidentifier):
    spy.state.reply = "Tell [PERSON_1] to rest; Dr. Alice Walker agrees."
    async with running_compliance([spy.address], presidio_deidentifier) as compliance:
        plain = await compliance.stub.Predict(predict_request(GEN_MODEL, NOTE, caller=caller()), timeout=30)
        allowed = await compliance.stub.Predict(
            predict_request(GEN_MODEL, NOTE, caller=caller("phi:reidentify")), timeout=30)
        streamed = [c.text async for c in compliance.stub.PredictStream(
            predict_request(GEN_MODEL, NOTE, caller=caller("phi:reidentify")), timeout=30)]
    assert plain.outputs.string_value == "Tell [PERSON_1] to rest; Dr. [PERSON_2] agrees."
    # Only what the caller sent is restored; a name the model produced stays redacted.
    assert allowed.outputs.string_value == "Tell John Smith to rest; Dr. [PERSON_2] agrees."
    assert "".join(streamed) == "Tell John Smith to rest; Dr. [PERSON_2] agrees."


async def test_conversation_placeholders_are_stable_across_turns(spy, presidio_deidentifier):
    async with running_compliance([spy.address], presidio_deidentifier) as compliance:
        await compliance.stub.Predict(predict_request(CHAT_MODEL, "I am Mary Jones.", caller=caller()), timeout=30)
        await compliance.stub.Predict(predict_request(CHAT_MODEL, "Bob Lee is my son; Mary Jones again.",
                                                      caller=caller(), session_id="s1"), timeout=30)
        await compliance.stub.Predict(predict_request(CHAT_MODEL, "Mary Jones here.", caller=caller(),
                                                      session_id="other"), timeout=30)
    first, second, other = (r.message for r in spy.state.requests("Chat"))
    assert first == "I am [PERSON_1]."
    assert second == "[PERSON_2] is my son; [PERSON_1] again."
    assert other == "[PERSON_1] here."


def _pg_url(port: int, schema: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/test?options=-csearch_path%3D{schema}"


@pytest.mark.postgres
async def test_records_spool_during_a_postgres_outage_and_replay_in_order(tmp_path):
    if not postgres_available():
        pytest.skip("PostgreSQL does not answer on 127.0.0.1:5432")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    url = _pg_url(proxy.port, schema)

    async def open_store() -> AuditStore:
        store = AuditStore(await open_database(url, timeout=1))
        await store.migrate()
        return store

    log = AuditLog(open_store, Spool(tmp_path / "spool.jsonl"), AuditPolicy(retry_seconds=0.0, checkpoint_every=0))
    try:
        await log.start()
        await log.write(new_event("predict", "success", request_id="before"))
        await proxy.stop()
        for i in range(3):
            await log.write(new_event("predict", "success", request_id=f"during-{i}"))
        assert log.spooled == 3 and len(Spool(tmp_path / "spool.jsonl").read()) == 3
        assert await log.replay() == 0  # still away
        await proxy.start()
        await log.write(new_event("predict", "success", request_id="after"))  # queued behind the spool
        assert log.spooled == 4
        assert await log.replay() == 4
        assert log.spooled == 0 and Spool(tmp_path / "spool.jsonl").read() == []
        store = await open_store()
        try:
            records = await store.list()
            assert [r.event.request_id for r in records] == ["before", "during-0", "during-1", "during-2", "after"]
            assert (await store.verify()).intact
        finally:
            await store.db.close()
    finally:
        await log.close()
        await proxy.stop()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


async def test_fail_closed_refuses_requests_when_no_record_can_be_written(spy, presidio_deidentifier, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the spool's folder should be")
    app = AppSettings(environment="test", data_dir=tmp_path, state_dir=tmp_path,
                      database_url="postgresql://postgres@127.0.0.1:1/test")  # nothing listens on port 1
    medical = MedicalSettings(audit_fail_closed=True, audit_spool_path=blocked / "spool.jsonl",
                              audit_db_timeout_seconds=1)
    async with running_compliance([spy.address], presidio_deidentifier, app=app, medical=medical) as compliance:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await compliance.stub.Predict(predict_request(GEN_MODEL, NOTE, caller=caller()), timeout=30)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == "audit log unavailable"
    assert spy.state.requests("Generate") == []  # the worker never saw the request
    assert isinstance(Path(blocked), Path)


async def test_calls_the_gateway_refused_are_chained_without_client_text(spy, presidio_deidentifier, tmp_path):
    app = AppSettings(environment="test", data_dir=tmp_path, state_dir=tmp_path)
    refusals = [
        compliance_pb2.Refusal(request_id="r-1", action="predict", status_code="UNAUTHENTICATED",
                               claimed_key_id="0123456789ab", client_address="10.0.0.9", model_id=GEN_MODEL),
        compliance_pb2.Refusal(request_id="r-2", action="predict", status_code="UNAUTHENTICATED",
                               claimed_key_id="John Smith", client_address="John Smith, 617-555-0123"),
        compliance_pb2.Refusal(request_id="r-3", action="deidentify", status_code="PERMISSION_DENIED",
                               principal_id="a1b2c3d4e5f6", role="auditor", client_address="10.0.0.7"),
    ]
    async with running_compliance([spy.address], presidio_deidentifier, app=app) as compliance:
        answer = await compliance.stub.RecordRefusals(compliance_pb2.RecordRefusalsRequest(refusals=refusals))
        listed = await compliance.stub.ListAuditRecords(compliance_pb2.ProxyListAuditRecordsRequest(
            caller=AUDITOR, request=inference_pb2.ListAuditRecordsRequest(limit=10)))
        verified = await compliance.stub.VerifyAudit(compliance_pb2.ProxyVerifyAuditRequest(caller=AUDITOR))
    assert answer.recorded == 3
    rows = [(r.request_id, r.action, r.outcome, r.status_code, r.principal_id, r.role, r.client_address, r.model_id)
            for r in listed.records]
    assert rows[:3] == [
        ("r-1", "predict", "denied", "UNAUTHENTICATED", "unverified:0123456789ab", "", "10.0.0.9", GEN_MODEL),
        ("r-2", "predict", "denied", "UNAUTHENTICATED", "anonymous", "", "", ""),
        ("r-3", "deidentify", "denied", "PERMISSION_DENIED", "a1b2c3d4e5f6", "auditor", "10.0.0.7", ""),
    ]
    assert verified.intact
    stored = (tmp_path / "medai.db").read_bytes()
    assert b"John Smith" not in stored and b"617-555-0123" not in stored


class _CountingStore(AuditStore):
    """The real store, noting how many events each transaction chained."""

    def __init__(self, db) -> None:
        super().__init__(db)
        self.transactions: list[int] = []

    async def append_all(self, events):
        self.transactions.append(len(events))
        return await super().append_all(events)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def audit_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/audit.db"
        return
    if not postgres_available():
        pytest.skip("PostgreSQL does not answer on 127.0.0.1:5432")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    yield _pg_url(5432, schema)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


async def test_concurrent_writes_commit_together_in_order_and_survive_a_cancelled_writer(audit_database_url,
                                                                                         tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from libs.security.signing import Signer, Verifier, key_id

    store = _CountingStore(await open_database(audit_database_url, timeout=5))
    await store.migrate()
    signer = Signer(Ed25519PrivateKey.generate())
    log = AuditLog(lambda: _opened(store), Spool(tmp_path / "spool.jsonl"), AuditPolicy(checkpoint_every=10),
                   signer=signer)
    try:
        await log.start()
        writers = [asyncio.ensure_future(log.write(new_event("predict", "started", request_id=f"r{n}")))
                   for n in range(40)]
        await asyncio.sleep(0)  # every writer has queued its record
        writers[25].cancel()  # its caller went away: the record is still chained
        await asyncio.gather(*writers, return_exceptions=True)
        await log.close()
        reader = AuditStore(await open_database(audit_database_url, timeout=5))
        try:
            records = await reader.list(limit=100)
            verifier = Verifier({key_id(signer.private_key.public_key()): signer.private_key.public_key()})
            verification = await reader.verify(lambda c: verifier.valid(c.key_id, c.message(), c.signature))
            checkpoints = await reader.checkpoints()
        finally:
            await reader.db.close()
    finally:
        await log.close()
    assert [r.event.request_id for r in records] == [f"r{n}" for n in range(40)]
    assert sum(store.transactions) == 40 and len(store.transactions) < 40  # some transactions held several
    assert verification.intact and verification.records_checked == 40
    assert checkpoints and checkpoints[-1].sequence == 40  # a transaction reaching a multiple of 10 signs its head


async def _opened(store: AuditStore) -> AuditStore:
    return store


class _BrokenSpool(Spool):
    """A spool that fails in a way no one planned for (not an OSError)."""

    def append(self, event) -> None:
        raise RuntimeError("spool bug")


async def test_a_fault_while_writing_counts_the_records_as_lost_and_fail_closed_refuses(tmp_path):
    async def no_database() -> AuditStore:
        raise OSError("database away")

    log = AuditLog(no_database, _BrokenSpool(tmp_path / "spool.jsonl"), AuditPolicy(fail_closed=True,
                                                                                     checkpoint_every=0))
    for attempt in range(2):  # the writer that failed does not stop later writes from being tried
        with pytest.raises(NotReady):
            await log.write(new_event("predict", "started", request_id=f"r{attempt}"))
    await log.close()
