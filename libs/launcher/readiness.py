"""Wait until Envoy's GET /health reports every service SERVING."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable

POLL_SECONDS = 0.5


def mesh_status(health_url: str) -> dict | None:
    """The decoded /health answer, or None while Envoy or the gateway cannot answer."""
    try:
        with urllib.request.urlopen(health_url, timeout=2) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def all_serving(health: dict | None, services: Iterable[str]) -> bool:
    if not health or health.get("status") != "SERVING":
        return False
    reported = health.get("services", {})
    return all(reported.get(name, {}).get("status") == "SERVING" for name in services)


def wait_until_serving(health_url: str, services: Iterable[str], timeout: float,
                       cancelled: threading.Event) -> bool:
    """Poll until every service is SERVING (True), or timeout/cancel (False)."""
    names = list(services)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cancelled.is_set():
        if all_serving(mesh_status(health_url), names):
            return True
        cancelled.wait(POLL_SECONDS)
    return False
