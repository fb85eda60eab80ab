"""One contract for the API key store, run on SQLite and on PostgreSQL."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.security.api_keys import split_key
from libs.stores.keys import SCHEMA, KeyLimits, KeyStore
from tests.support.databases import isolated_database

PEPPER = b"contract-test-pepper"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store(request, tmp_path):
    async with isolated_database(request.param, tmp_path) as db:
        keys = KeyStore(db, PEPPER)
        await keys.migrate()
        await keys.migrate()  # idempotent
        yield keys


async def test_created_key_authenticates_with_its_role_and_models(store):
    key, plaintext = await store.create(name="ward 5 app", role="service", models=("m1", "m2"))
    found = await store.authenticate(plaintext)
    assert found is not None
    assert (found.key_id, found.role, found.models, found.name) == (key.key_id, "service", ("m1", "m2"), "ward 5 app")


async def test_the_plaintext_is_not_stored(store):
    _, plaintext = await store.create(name="n", role="admin")
    rows = await store.db.fetchall("SELECT * FROM api_keys")
    _, secret = split_key(plaintext)  # the secret itself may contain "_"
    assert all(secret not in str(value) for row in rows for value in row)


@pytest.mark.parametrize("mangle", [
    lambda k: k + "x",
    lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),
    lambda k: "msk_000000000000_" + split_key(k)[1],
    lambda k: "",
    lambda k: "not-a-key",
])
async def test_wrong_or_malformed_keys_are_refused(store, mangle):
    _, plaintext = await store.create(name="n", role="admin")
    assert await store.authenticate(mangle(plaintext)) is None


async def test_revoked_key_is_refused(store):
    key, plaintext = await store.create(name="n", role="clinician")
    assert await store.revoke(key.key_id) is True
    assert await store.authenticate(plaintext) is None
    assert await store.revoke(key.key_id) is False


async def test_expired_key_is_refused(store):
    _, plaintext = await store.create(name="n", role="clinician", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await store.authenticate(plaintext) is None
    _, fresh = await store.create(name="n", role="clinician", expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert await store.authenticate(fresh) is not None


async def test_unknown_role_is_rejected(store):
    with pytest.raises(ValueError, match="unknown role"):
        await store.create(name="n", role="superuser")


async def test_list_shows_every_key_in_creation_order(store):
    first, _ = await store.create(name="a", role="admin")
    second, _ = await store.create(name="b", role="auditor")
    await store.revoke(first.key_id)
    listed = await store.list()
    assert [k.key_id for k in listed] == [first.key_id, second.key_id]
    assert listed[0].revoked_at is not None and listed[1].revoked_at is None


async def test_limits_round_trip_and_update(store):
    key, plaintext = await store.create(name="etl", role="service", limits=KeyLimits(120, 5000))
    found = await store.authenticate(plaintext)
    assert found.limits == KeyLimits(120, 5000)
    assert await store.update_limits(key.key_id, {"rpm": 30})
    assert (await store.authenticate(plaintext)).limits == KeyLimits(30, 5000)  # tpm left as it was
    assert await store.update_limits(key.key_id, {"tpm": None})
    assert (await store.authenticate(plaintext)).limits == KeyLimits(30, None)
    assert not await store.update_limits("000000000000", {"rpm": 1})
    with pytest.raises(ValueError, match="rpm"):
        await store.update_limits(key.key_id, {"rpm": 0})
    with pytest.raises(ValueError, match="unknown limit"):
        await store.update_limits(key.key_id, {"rps": 1})
    _, unlimited = await store.create(name="dev", role="admin")
    assert (await store.authenticate(unlimited)).limits == KeyLimits()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_migrate_adds_the_limit_columns_to_a_first_release_table(backend, tmp_path):
    async with isolated_database(backend, tmp_path) as db:
        await db.execute(SCHEMA)  # the table as the first release created it, with a key in it
        await db.execute("INSERT INTO api_keys (key_id, name, role, models, secret_hash, created_at) "
                         "VALUES (%s, %s, %s, %s, %s, %s)", ("0123456789ab", "old", "admin", "[]", "x", "2026-01-01"))
        keys = KeyStore(db, PEPPER)
        await keys.migrate()
        await keys.migrate()
        (old,) = await keys.list()
        assert (old.key_id, old.limits) == ("0123456789ab", KeyLimits())
        assert await keys.update_limits("0123456789ab", {"rpm": 5})
