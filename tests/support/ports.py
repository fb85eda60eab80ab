"""Free TCP ports on 127.0.0.1 for servers a test starts."""
from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Distinct ports that were free a moment ago (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
