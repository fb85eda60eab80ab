"""Envoy's preStop hook: `python -m libs.deploy.edge_drain [--wait SECONDS]`.

POST /healthcheck/fail on Envoy's admin port: Envoy's state turns DRAINING and its /ready answers
503, so the readiness probe fails and the pod leaves the Service's endpoints (and load balancers
stop sending) before the kubelet sends SIGTERM; then wait that long for the change to spread.
"""
from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request

from libs.config import EnvoySettings

DEFAULT_WAIT_SECONDS = 10.0


def fail_health_checks(admin_port: int, timeout: float = 2.0) -> bool:
    """Ask Envoy to fail its health checks; whether it accepted."""
    request = urllib.request.Request(f"http://127.0.0.1:{admin_port}/healthcheck/fail", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=DEFAULT_WAIT_SECONDS, help="seconds to wait afterwards")
    args = parser.parse_args(argv)
    accepted = fail_health_checks(EnvoySettings().admin_port)
    print(f"envoy health checks {'failing' if accepted else 'not reachable'}; waiting {args.wait:.0f} s", flush=True)
    time.sleep(args.wait)  # the wait is the point: endpoints and load balancers catch up meanwhile
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
