"""The one way the mesh opens Redis (redis-py asyncio): short timeouts, so a Redis outage is noticed
quickly and stores can fall back to their in-process implementation."""
from __future__ import annotations

from redis.asyncio import Redis

CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 1.0


def open_redis(url: str) -> Redis:
    """A client for `redis://host:port/db` (connections are made lazily, pooled)."""
    return Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        health_check_interval=30,
        decode_responses=False,
    )
