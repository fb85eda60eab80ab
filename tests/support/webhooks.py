"""A real HTTP receiver on 127.0.0.1 for alert webhooks: records every JSON body it accepts, and can
answer the first requests with an error status (to exercise retries)."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Receiver:
    url: str
    fail_first: int = 0
    fail_status: int = 500
    attempts: int = 0
    received: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[dict]:
        with self.lock:
            return list(self.received)

    def wait_for(self, accept, timeout: float = 30.0) -> list[dict]:
        """Poll until accept(bodies) holds; AssertionError with what arrived at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            bodies = self.bodies()
            if accept(bodies):
                return bodies
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook bodies not as expected after {timeout} s: {bodies}")
            time.sleep(0.05)


@contextmanager
def webhook_receiver(fail_first: int = 0, fail_status: int = 500) -> Iterator[Receiver]:
    receiver = Receiver("", fail_first, fail_status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with receiver.lock:
                receiver.attempts += 1
                failing = receiver.attempts <= receiver.fail_first
                if not failing:
                    receiver.received.append(json.loads(body))
            self.send_response(receiver.fail_status if failing else 200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}/alerts"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
