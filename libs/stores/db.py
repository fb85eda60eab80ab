"""One async database interface over PostgreSQL (psycopg 3 + pool) and embedded SQLite.

Stores write their SQL once with `%s` placeholders; the SQLite backend rewrites them to `?`.
Which backend serves a URL is a table lookup on its scheme.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

Row = tuple[Any, ...]


class Database(Protocol):
    """What stores need from a database."""

    dialect: str

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def close(self) -> None: ...


class SqliteDatabase:
    """The embedded default: one aiosqlite connection (SQLite serialises writers anyway)."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: Any = None
        self._lock = asyncio.Lock()

    async def open(self) -> SqliteDatabase:
        import aiosqlite

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = await aiosqlite.connect(self.path, isolation_level=None)
        await self._connection.execute("PRAGMA journal_mode=WAL")
        await self._connection.execute("PRAGMA busy_timeout=5000")
        return self

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%s", "?")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._lock:
            cursor = await self._connection.execute(self._sql(sql), tuple(params))
            return cursor.rowcount

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._lock, self._connection.execute(self._sql(sql), tuple(params)) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._lock, self._connection.execute(self._sql(sql), tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


class PostgresDatabase:
    """Production: a psycopg 3 async connection pool; each statement in its own transaction."""

    dialect = "postgresql"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._min_size, self._max_size = min_size, max_size
        self._pool: Any = None

    async def open(self) -> PostgresDatabase:
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(
            self.url, min_size=self._min_size, max_size=self._max_size, open=False, kwargs={"autocommit": True}
        )
        await self._pool.open(wait=True, timeout=10)
        return self

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(sql, tuple(params))
            return cursor.rowcount

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(sql, tuple(params))
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(sql, tuple(params))
            return list(await cursor.fetchall())

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _sqlite(url: str) -> Awaitable[Database]:
    # sqlite:///relative/file.db and sqlite:////absolute/file.db, as SQLAlchemy spells them.
    return SqliteDatabase(Path(urlparse(url).path.removeprefix("/"))).open()


def _postgres(url: str) -> Awaitable[Database]:
    return PostgresDatabase(url).open()


BACKENDS: dict[str, Callable[[str], Awaitable[Database]]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


async def open_database(url: str) -> Database:
    """Open the database a URL names: `sqlite:///data/medai.db`, `sqlite:////abs/path.db`, `postgresql://...`."""
    scheme = urlparse(url).scheme
    if scheme not in BACKENDS:
        raise ValueError(f"unsupported database URL scheme '{scheme}' (use sqlite or postgresql)")
    return await BACKENDS[scheme](url)
