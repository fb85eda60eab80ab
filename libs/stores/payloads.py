"""Encrypted payload store (envelope encryption) with crypto-shredding, over `libs.stores.db.Database`.

Payloads kept for review are sealed with AES-256-GCM under the data key of their day, with the
record id and purpose as associated data (a ciphertext moved to another record does not open).
Data keys are stored only wrapped (AES key wrap, RFC 3394) by the key-encryption key (KEK), so
rotating the KEK re-wraps the day keys and never touches a payload. `purge` destroys the data
keys older than the retention: their payloads can no longer be decrypted by anyone, while the
audit chain (which holds no payload) still verifies.
"""
from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from libs.errors import NotFound
from libs.stores.db import Database

NONCE_BYTES = 12
KEY_BYTES = 32
_TABLES = (
    """CREATE TABLE IF NOT EXISTS data_keys (
        key_day TEXT PRIMARY KEY,
        kek_id TEXT NOT NULL,
        wrapped_key TEXT,
        created_at TEXT NOT NULL,
        destroyed_at TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS sealed_payloads (
        record_id TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        key_day TEXT NOT NULL,
        nonce TEXT NOT NULL,
        ciphertext TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
)


class KeyDestroyed(NotFound):
    default_message = "the payload's data key was destroyed (retention)"


def kek_id(kek: bytes) -> str:
    return hashlib.sha256(b"medai-kek:" + kek).hexdigest()[:16]


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class PayloadVault:
    def __init__(self, db: Database, kek: bytes, *, today: Callable[[], date] | None = None) -> None:
        if len(kek) != KEY_BYTES:
            raise ValueError("the key-encryption key must be 32 bytes")
        self.db = db
        self._kek = kek
        self._kek_id = kek_id(kek)
        self._today = today or (lambda: datetime.now(UTC).date())

    async def migrate(self) -> None:
        for statement in _TABLES:
            await self.db.execute(statement)

    async def seal(self, record_id: str, purpose: str, payload: bytes) -> None:
        day = self._today().isoformat()
        key = await self._day_key(day, create=True)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(key).encrypt(nonce, payload, _aad(record_id, purpose))
        await self.db.execute(
            "INSERT INTO sealed_payloads (record_id, purpose, key_day, nonce, ciphertext, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (record_id, purpose, day, _b64(nonce), _b64(ciphertext), datetime.now(UTC).isoformat()))

    async def open(self, record_id: str, purpose: str) -> bytes:
        row = await self.db.fetchone(
            "SELECT key_day, nonce, ciphertext FROM sealed_payloads WHERE record_id = %s", (record_id,))
        if row is None:
            raise NotFound("no payload for this record")
        key = await self._day_key(row[0], create=False)
        return AESGCM(key).decrypt(base64.b64decode(row[1]), base64.b64decode(row[2]), _aad(record_id, purpose))

    async def rotate(self, new_kek: bytes) -> int:
        """Re-wrap every live data key under a new KEK (payloads are untouched); how many were re-wrapped."""
        if len(new_kek) != KEY_BYTES:
            raise ValueError("the key-encryption key must be 32 bytes")
        rows = await self.db.fetchall("SELECT key_day, wrapped_key FROM data_keys WHERE wrapped_key IS NOT NULL")
        async with self.db.transaction() as tx:
            for day, wrapped in rows:
                key = aes_key_unwrap(self._kek, base64.b64decode(wrapped))
                await tx.execute("UPDATE data_keys SET wrapped_key = %s, kek_id = %s WHERE key_day = %s",
                                 (_b64(aes_key_wrap(new_kek, key)), kek_id(new_kek), day))
        self._kek, self._kek_id = new_kek, kek_id(new_kek)
        return len(rows)

    async def purge(self, retention_days: int) -> int:
        """Destroy the data keys of days older than the retention (crypto-shredding); how many."""
        cutoff = (self._today() - timedelta(days=retention_days)).isoformat()
        return await self.db.execute(
            "UPDATE data_keys SET wrapped_key = NULL, destroyed_at = %s WHERE key_day < %s AND wrapped_key IS NOT NULL",
            (datetime.now(UTC).isoformat(), cutoff))

    async def _day_key(self, day: str, *, create: bool) -> bytes:
        row = await self.db.fetchone("SELECT wrapped_key FROM data_keys WHERE key_day = %s", (day,))
        if row is None and create:
            key = AESGCM.generate_key(bit_length=256)
            await self.db.execute(
                "INSERT INTO data_keys (key_day, kek_id, wrapped_key, created_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (key_day) DO NOTHING",
                (day, self._kek_id, _b64(aes_key_wrap(self._kek, key)), datetime.now(UTC).isoformat()))
            row = await self.db.fetchone("SELECT wrapped_key FROM data_keys WHERE key_day = %s", (day,))
        if row is None or row[0] is None:
            raise KeyDestroyed()
        return aes_key_unwrap(self._kek, base64.b64decode(row[0]))


def _aad(record_id: str, purpose: str) -> bytes:
    return f"medai-payload:{record_id}:{purpose}".encode()
