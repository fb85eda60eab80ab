"""One contract for the audit chain and the payload vault, run on SQLite and on PostgreSQL."""
from __future__ import annotations

import itertools
from datetime import date

import psycopg
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap

from libs.security.signing import Signer, Verifier, key_id
from libs.stores.audit import AuditStore, Checkpoint, new_event, record_hash
from libs.stores.payloads import KeyDestroyed, PayloadVault
from tests.support.databases import isolated_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store(request, tmp_path):
    async with isolated_database(request.param, tmp_path) as db:
        audit = AuditStore(db)
        await audit.migrate()
        await audit.migrate()  # idempotent
        yield audit


async def fill(store: AuditStore, n: int = 6) -> None:
    for i in range(n):
        await store.append(new_event("predict", "success", request_id=f"r{i}", principal_id="key-1",
                                     phi_entity_counts={"PERSON": i}, latency_seconds=0.1 * i))


async def tamper(store: AuditStore, *statements: tuple[str, tuple]) -> None:
    """What an attacker with database rights does: triggers off, change rows, triggers back on."""
    if store.db.dialect == "sqlite":
        for verb in ("update", "delete"):
            await store.db.execute(f"DROP TRIGGER audit_records_no_{verb}")
    else:
        await store.db.execute("ALTER TABLE audit_records DISABLE TRIGGER USER")
    for sql, params in statements:
        await store.db.execute(sql, params)
    await store.migrate()
    if store.db.dialect == "postgresql":
        await store.db.execute("ALTER TABLE audit_records ENABLE TRIGGER USER")


async def test_appended_records_chain_and_verify(store):
    await fill(store)
    records = await store.list()
    assert [r.sequence for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[0].previous_hash == "0" * 64
    assert all(b.previous_hash == a.record_hash for a, b in itertools.pairwise(records))
    assert records[3].event.phi_entity_counts == {"PERSON": 3}
    assert (await store.verify()).intact
    assert [r.sequence for r in await store.list(request_id="r2")] == [3]
    assert [r.sequence for r in await store.list(after_sequence=4, limit=1)] == [5]


async def test_a_replayed_event_is_stored_once(store):
    event = new_event("predict", "success")
    assert await store.append(event) is not None
    assert await store.append(event) is None
    assert len(await store.append_all([event, new_event("predict", "failure")])) == 1
    assert len(await store.list()) == 2


@pytest.mark.parametrize("sql", ["UPDATE audit_records SET outcome = 'failure'", "DELETE FROM audit_records",
                                 "UPDATE audit_checkpoints SET signature = 'x'", "DELETE FROM audit_checkpoints"])
async def test_update_and_delete_are_refused_by_triggers(store, sql):
    await fill(store, 2)
    await store.add_checkpoint(Checkpoint(2, "h", "t", "k", "s"))
    with pytest.raises((psycopg.Error, Exception), match="append-only"):
        await store.db.execute(sql)
    assert (await store.verify()).records_checked == 2


TAMPERING = {
    "modified": ([("UPDATE audit_records SET outcome = 'failure' WHERE sequence = 3", ())], 3, "modified"),
    "deleted": ([("DELETE FROM audit_records WHERE sequence = 4", ())], 4, "deleted"),
    "inserted": ([("UPDATE audit_records SET sequence = sequence + 100 WHERE sequence >= 4", ()),
                  ("UPDATE audit_records SET sequence = sequence - 99 WHERE sequence >= 104", ())], 4, "modified"),
    "reordered": ([("UPDATE audit_records SET sequence = 100 WHERE sequence = 2", ()),
                   ("UPDATE audit_records SET sequence = 2 WHERE sequence = 3", ()),
                   ("UPDATE audit_records SET sequence = 3 WHERE sequence = 100", ())], 2, "previous_hash"),
}


@pytest.mark.parametrize("case", TAMPERING)
async def test_verify_names_the_first_tampered_record(store, case):
    await fill(store)
    statements, first, reason = TAMPERING[case]
    if case == "inserted":  # make room at 4 and put a forged row there
        rows = await store.db.fetchall("SELECT * FROM audit_records WHERE sequence = 3")
        assert rows
    await tamper(store, *statements)
    if case == "inserted":
        forged = (await store.list(after_sequence=2, limit=1))[0]
        await tamper(store, ("INSERT INTO audit_records (sequence, event_id, recorded_at, request_id, trace_id, "
                             "principal_id, role, client_address, action, model_id, model_version, outcome, "
                             "status_code, purpose, phi_entity_counts, input_digest, output_digest, latency_seconds, "
                             "previous_hash, record_hash) SELECT 4, 'forged', recorded_at, request_id, trace_id, "
                             "principal_id, role, client_address, action, model_id, model_version, outcome, "
                             "status_code, purpose, phi_entity_counts, input_digest, output_digest, latency_seconds, "
                             "record_hash, %s FROM audit_records WHERE sequence = 3", (forged.record_hash,)))
    result = await store.verify()
    assert not result.intact
    assert result.first_broken_sequence == first
    assert reason in result.reason


async def test_a_rewritten_chain_fails_its_signed_checkpoint(store):
    await fill(store, 4)
    signer = Signer(Ed25519PrivateKey.generate())
    verifier = Verifier({signer.key_id: signer.private_key.public_key()})
    sequence, head = await store.head()
    unsigned = Checkpoint(sequence, head, "2026-01-01T00:00:00+00:00", signer.key_id, "")
    await store.add_checkpoint(Checkpoint(sequence, head, unsigned.signed_at, signer.key_id,
                                          signer.sign(unsigned.message())))

    def valid(c):
        return verifier.valid(c.key_id, c.message(), c.signature)

    assert (await store.verify(valid)).intact and (await store.verify(valid)).checkpoints_checked == 1
    # Rewrite record 2 and recompute every hash after it: the chain alone verifies again ...
    rows = await store.list()
    statements, previous = [], rows[0].record_hash
    for record in rows[1:]:
        stored = await store.db.fetchone("SELECT phi_entity_counts FROM audit_records WHERE sequence = %s",
                                         (record.sequence,))
        from libs.stores.audit import _stored_fields
        fields = _stored_fields(record.event)
        if record.sequence == 2:
            fields["outcome"] = "failure"
        own = record_hash(record.sequence, fields, previous)
        statements.append(("UPDATE audit_records SET outcome = %s, previous_hash = %s, record_hash = %s "
                           "WHERE sequence = %s", (fields["outcome"], previous, own, record.sequence)))
        previous = own
        assert stored is not None
    await tamper(store, *statements)
    # ... every hash and link holds, but not against the checkpoint signed before.
    result = await store.verify(valid)
    assert not result.intact and result.first_broken_sequence == 4 and "checkpoint" in result.reason
    forged = Verifier({key_id(Ed25519PrivateKey.generate().public_key()): signer.private_key.public_key()})
    assert not (await store.verify(lambda c: forged.valid(c.key_id, c.message(), c.signature))).intact


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def vault_db(request, tmp_path):
    async with isolated_database(request.param, tmp_path) as db:
        yield db


async def test_payloads_seal_rotate_and_shred(vault_db):
    day = [date(2026, 1, 1)]
    vault = PayloadVault(vault_db, b"k" * 32, today=lambda: day[0])
    await vault.migrate()
    await vault.seal("rec-1", "TREAT", b"John Smith 536-22-8145")
    day[0] = date(2026, 1, 20)
    await vault.seal("rec-2", "TREAT", b"Mary Jones")
    rows = await vault_db.fetchall("SELECT ciphertext FROM sealed_payloads")
    assert all(b"John" not in r[0].encode() for r in rows)
    assert await vault.open("rec-1", "TREAT") == b"John Smith 536-22-8145"
    with pytest.raises(InvalidTag):  # purpose (and record id) are associated data
        await vault.open("rec-1", "RESEARCH")

    ciphertexts = await vault_db.fetchall("SELECT record_id, ciphertext FROM sealed_payloads ORDER BY record_id")
    assert await vault.rotate(b"n" * 32) == 2
    assert await vault_db.fetchall("SELECT record_id, ciphertext FROM sealed_payloads ORDER BY record_id") == ciphertexts  # noqa: E501
    assert await vault.open("rec-2", "TREAT") == b"Mary Jones"
    with pytest.raises(InvalidUnwrap):  # the old KEK no longer unwraps anything
        await PayloadVault(vault_db, b"k" * 32, today=lambda: day[0]).open("rec-2", "TREAT")

    assert await vault.purge(retention_days=10) == 1  # 2026-01-01 is older than 10 days
    with pytest.raises(KeyDestroyed):
        await vault.open("rec-1", "TREAT")
    assert await vault.open("rec-2", "TREAT") == b"Mary Jones"
