"""API key store over `libs.stores.db.Database` (PostgreSQL or SQLite, same SQL)."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from libs.security.api_keys import issue_key, secret_matches, split_key
from libs.security.roles import ROLE_PERMISSIONS
from libs.stores.db import Database, unavailable_as

STORE_NAME = "API key store"

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    models TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
)
"""
# Columns added after the first release: (name, SQL type); added by `migrate` where missing.
ADDED_COLUMNS = (("rpm", "BIGINT"), ("tpm", "BIGINT"))
_COLUMNS = "key_id, name, role, models, secret_hash, created_at, expires_at, revoked_at, rpm, tpm"


@dataclass(frozen=True)
class KeyLimits:
    """A key's own rate limits; None: none set on the key (the role's default applies, if any)."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its secret)."""

    key_id: str
    name: str
    role: str
    models: tuple[str, ...]  # empty: every model the role allows
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    limits: KeyLimits = KeyLimits()

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _row_to_key(row: tuple) -> tuple[ApiKey, str]:
    key_id, name, role, models, secret_hash, created, expires, revoked, rpm, tpm = row
    key = ApiKey(key_id, name, role, tuple(json.loads(models)), _parse(created), _parse(expires), _parse(revoked),
                 KeyLimits(_limit(rpm), _limit(tpm)))
    return key, secret_hash


def _limit(value: object) -> int | None:
    return int(value) if value is not None else None


def _check_limit(value: int | None, option: str) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{option} must be a positive number of units per minute")


class KeyStore:
    """Create, authenticate, list and revoke API keys."""

    def __init__(self, db: Database, pepper: bytes) -> None:
        self.db = db
        self._pepper = pepper

    async def migrate(self) -> None:
        await self.db.execute(SCHEMA)
        present = await self._columns()
        for column, sql_type in ADDED_COLUMNS:
            if column not in present:
                await self.db.execute(f"ALTER TABLE api_keys ADD COLUMN {column} {sql_type}")

    async def _columns(self) -> set[str]:
        if self.db.dialect == "sqlite":
            return {row[1] for row in await self.db.fetchall("PRAGMA table_info(api_keys)")}
        rows = await self.db.fetchall(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'api_keys' AND table_schema = current_schema()")
        return {row[0] for row in rows}

    async def create(
        self, *, name: str, role: str, models: tuple[str, ...] = (), expires_at: datetime | None = None,
        limits: KeyLimits = KeyLimits(),
    ) -> tuple[ApiKey, str]:
        """Store a new key; returns it and its plaintext (shown once, never stored)."""
        if role not in ROLE_PERMISSIONS:
            raise ValueError(f"unknown role '{role}' (one of: {', '.join(ROLE_PERMISSIONS)})")
        if not name.strip():
            raise ValueError("name must not be empty")
        _check_limit(limits.requests_per_minute, "rpm")
        _check_limit(limits.tokens_per_minute, "tpm")
        issued = issue_key(self._pepper)
        key = ApiKey(issued.key_id, name, role, tuple(models), _now(), expires_at, None, limits)
        await self.db.execute(
            f"INSERT INTO api_keys ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (key.key_id, name, role, json.dumps(list(models)), issued.secret_hash, _iso(key.created_at),
             _iso(expires_at), None, limits.requests_per_minute, limits.tokens_per_minute),
        )
        return key, issued.plaintext

    async def authenticate(self, plaintext: str) -> ApiKey | None:
        """The active key a plaintext belongs to, or None (unknown, wrong secret, revoked, expired).

        StoreUnavailable when the database does not answer (the caller may then use what it knew)."""
        parts = split_key(plaintext)
        if parts is None:
            return None
        key_id, secret = parts
        async with unavailable_as(STORE_NAME):
            row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,))
        if row is None:
            return None
        key, secret_hash = _row_to_key(row)
        if not secret_matches(self._pepper, secret, secret_hash) or not key.active(_now()):
            return None
        return key

    async def list(self) -> list[ApiKey]:
        rows = await self.db.fetchall(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at")
        return [_row_to_key(row)[0] for row in rows]

    async def update_limits(self, key_id: str, changes: Mapping[str, int | None]) -> bool:
        """Set ("rpm"/"tpm" -> a number) or remove (-> None) a key's own limits; the others stay.
        False when no key has that id."""
        unknown = set(changes) - {column for column, _ in ADDED_COLUMNS}
        if unknown:
            raise ValueError(f"unknown limit {sorted(unknown)[0]!r} (rpm or tpm)")
        for column, value in changes.items():
            _check_limit(value, column)
        if not changes:
            return await self.db.fetchone("SELECT 1 FROM api_keys WHERE key_id = %s", (key_id,)) is not None
        assignments = ", ".join(f"{column} = %s" for column in changes)
        changed = await self.db.execute(f"UPDATE api_keys SET {assignments} WHERE key_id = %s",
                                        (*changes.values(), key_id))
        return changed > 0

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key; False when no active key has that id."""
        changed = await self.db.execute(
            "UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL", (_iso(_now()), key_id)
        )
        return changed > 0
