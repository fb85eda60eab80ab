"""Foundation figures: time from `make run` to all SERVING (warm install), GET /health latency via Envoy."""
from __future__ import annotations

import time

import httpx

from bench.mesh import running_mesh
from bench.stats import summary_ms

HEALTH_CALLS = 1000


def run() -> dict:
    with running_mesh() as mesh:
        url = f"{mesh.ports.base_url}/health"
        samples = []
        with httpx.Client() as client:
            for _ in range(20):  # connection set-up, first-call paths
                client.get(url)
            for _ in range(HEALTH_CALLS):
                started = time.perf_counter()
                response = client.get(url)
                samples.append(time.perf_counter() - started)
                response.raise_for_status()
        return {
            "make_run_to_all_serving_seconds": round(mesh.seconds_to_serving, 2),
            "health_via_envoy": summary_ms(samples),
        }
