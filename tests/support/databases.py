"""The two database backends for store contract tests: embedded SQLite and the local PostgreSQL."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
import pytest

from libs.stores.db import Database, open_database

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_available() -> bool:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@asynccontextmanager
async def isolated_database(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh database: a new SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if backend == "sqlite":
        db = await open_database(f"sqlite:///{tmp_path / 'store.db'}")
        try:
            yield db
        finally:
            await db.close()
        return
    if not postgres_available():
        pytest.skip("PostgreSQL does not answer on 127.0.0.1:5432")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    db = await open_database(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
    try:
        yield db
    finally:
        await db.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
