"""The one way the mesh opens Redis (redis-py asyncio): short timeouts and a single quick retry, so a
Redis outage is noticed within about a second (stores then fall back or answer UNAVAILABLE), and a
pooled connection that died with a Redis restart is replaced on the next call instead of failing it."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from libs.errors import StoreUnavailable

CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 1.0


def open_redis(url: str) -> Redis:
    """A client for `redis://host:port/db` (connections are made lazily, pooled)."""
    return Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1,
                    supported_errors=(ConnectionError, TimeoutError)),
        health_check_interval=30,
        decode_responses=False,
    )


@contextlib.asynccontextmanager
async def redis_unavailable_as(store: str) -> AsyncIterator[None]:
    """Raise StoreUnavailable(store) when Redis does not answer (never its address or error text)."""
    try:
        yield
    except (RedisError, OSError):
        raise StoreUnavailable(store) from None
