"""The local Redis (127.0.0.1:6379) for store contract tests, isolated by a key prefix per test."""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis

from libs.stores.redis_client import open_redis

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@asynccontextmanager
async def isolated_redis() -> AsyncIterator[tuple[object, str]]:
    """(client, key prefix) for one test; every key under the prefix is deleted afterwards."""
    if not redis_available():
        pytest.skip("Redis does not answer on 127.0.0.1:6379")
    client = open_redis(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
