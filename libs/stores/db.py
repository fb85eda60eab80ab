"""One async database interface over PostgreSQL (psycopg 3 + pool) and embedded SQLite.

Stores write their SQL once with `%s` placeholders; the SQLite backend rewrites them to `?`.
Which backend serves a URL is a table lookup on its scheme.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import psycopg

from libs.errors import StoreUnavailable

Row = tuple[Any, ...]
# What a database that is down, unreachable or restarting raises (psycopg_pool's PoolTimeout is an
# OperationalError too): the store is unavailable, the request itself is fine.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, OSError, TimeoutError)
# Seconds the pool keeps retrying a lost connection before it gives up that attempt; the next call
# starts a new one. Short, so the pool's doubling backoff never grows past a few seconds.
RECONNECT_TIMEOUT_SECONDS = 4.0


@contextlib.asynccontextmanager
async def unavailable_as(store: str) -> AsyncIterator[None]:
    """Raise StoreUnavailable(store) for a database that does not answer (never its address or text)."""
    try:
        yield
    except UNAVAILABLE_ERRORS:
        raise StoreUnavailable(store) from None


class Database(Protocol):
    """What stores need from a database."""

    dialect: str

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def close(self) -> None: ...

    def transaction(self, lock_key: int | None = None) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """Statements that commit together; `lock_key` also serialises them with every other
        transaction holding the same key (an advisory lock in PostgreSQL, a write lock in SQLite)."""


class Transaction(Protocol):
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for each row of parameters, in one round trip to the driver."""

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


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

    @contextlib.asynccontextmanager
    async def transaction(self, lock_key: int | None = None) -> AsyncIterator[Transaction]:
        async with self._lock:
            await self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(self._connection)
            except BaseException:
                await self._connection.execute("ROLLBACK")
                raise
            await self._connection.execute("COMMIT")


class _SqliteTransaction:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._connection.execute(SqliteDatabase._sql(sql), tuple(params))
        return cursor.rowcount

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._connection.executemany(SqliteDatabase._sql(sql), [tuple(row) for row in rows])

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._connection.execute(SqliteDatabase._sql(sql), tuple(params)) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._connection.execute(SqliteDatabase._sql(sql), tuple(params)) as cursor:
            return list(await cursor.fetchall())


class PostgresDatabase:
    """Production: a psycopg 3 async connection pool; each statement in its own transaction."""

    dialect = "postgresql"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0) -> None:
        self.url = url
        self._min_size, self._max_size = min_size, max_size
        self._timeout = timeout  # seconds to get a connection (and to connect)
        self._pool: Any = None

    async def open(self) -> PostgresDatabase:
        from psycopg_pool import AsyncConnectionPool

        # check: a connection is tested before it is handed out, so none broken by a database restart
        # reaches a caller.
        self._pool = AsyncConnectionPool(
            self.url, min_size=self._min_size, max_size=self._max_size, open=False, timeout=self._timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self._timeout))},
            check=AsyncConnectionPool.check_connection, reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        )
        try:
            await self._pool.open(wait=True, timeout=min(10.0, self._timeout))
        except BaseException:
            await self._pool.close()
            raise
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

    @contextlib.asynccontextmanager
    async def transaction(self, lock_key: int | None = None) -> AsyncIterator[Transaction]:
        async with self._pool.connection() as connection, connection.transaction():
            if lock_key is not None:
                await connection.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            yield _PostgresTransaction(connection)


class _PostgresTransaction:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return (await self._connection.execute(sql, tuple(params))).rowcount

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._connection.cursor() as cursor:
            await cursor.executemany(sql, [tuple(row) for row in rows])

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await (await self._connection.execute(sql, tuple(params))).fetchone()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await (await self._connection.execute(sql, tuple(params))).fetchall())


def _sqlite(url: str, timeout: float) -> Awaitable[Database]:
    # sqlite:///relative/file.db and sqlite:////absolute/file.db, as SQLAlchemy spells them.
    return SqliteDatabase(Path(urlparse(url).path.removeprefix("/"))).open()


def _postgres(url: str, timeout: float) -> Awaitable[Database]:
    return PostgresDatabase(url, timeout=timeout).open()


BACKENDS: dict[str, Callable[[str, float], Awaitable[Database]]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


async def open_database(url: str, *, timeout: float = 30.0) -> Database:
    """Open the database a URL names: `sqlite:///data/medai.db`, `sqlite:////abs/path.db`, `postgresql://...`.

    `timeout`: seconds to wait for a connection (PostgreSQL)."""
    scheme = urlparse(url).scheme
    if scheme not in BACKENDS:
        raise ValueError(f"unsupported database URL scheme '{scheme}' (use sqlite or postgresql)")
    return await BACKENDS[scheme](url, timeout)
