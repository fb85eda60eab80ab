"""The local Redis behind a TCP proxy a test can stop ("Redis stops answering mid-test") and start
again on the same port; the shared server itself is never touched."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tests.support.redis_server import REDIS_URL
from tests.support.tcp_proxy import TcpProxy


@contextlib.asynccontextmanager
async def redis_proxy() -> AsyncIterator[TcpProxy]:
    """A started proxy to 127.0.0.1:6379 (dial `proxied_url(proxy)`); stopped afterwards."""
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def proxied_url(proxy: TcpProxy) -> str:
    return REDIS_URL.replace(":6379/", f":{proxy.port}/")
