"""Envoy -> gateway -> compliance -> generation, each a real server (tiny model), and a worker that goes down.

Proves the error mapping end to end: a worker that stops answers HTTP 503 (UNAVAILABLE) through the
edge, with a message that does not contain the request text; the other routes keep working.
"""
from __future__ import annotations

import contextlib

import httpx

from libs.config import AppSettings, EnvoySettings, GatewaySettings, GenerationSettings
from tests.fixtures.compliance import running_compliance
from tests.fixtures.llm_workers import MODEL_ID, serve_generation, worker_fields
from tests.support.edge import running_edge
from tests.support.ports import free_ports

PHI_TEXT = "Patient Mary Major, SSN 536-22-8145, is short of breath"


@contextlib.asynccontextmanager
async def running_gateway(tmp_path, compliance_address: str):
    from services.gateway.server import build_deps, create_server

    settings = GatewaySettings(
        host="127.0.0.1", port=0, metrics_port=0, compliance_address=compliance_address,
        monitor_address="127.0.0.1:1", catalog_ttl_seconds=0,
        app=AppSettings(environment="test", state_dir=tmp_path / "state", data_dir=tmp_path / "data"),
    )
    deps = await build_deps(settings)
    server, port = create_server(settings, deps)
    await server.start()
    await deps.health.set_serving(True)
    try:
        _, key = await deps.keys.create(name="integration", role="admin")
        yield f"127.0.0.1:{port}", key
    finally:
        await server.stop(None)
        await deps.close()


async def test_worker_down_is_503_through_envoy(tmp_path, tiny_lm_dir, presidio_deidentifier):
    settings = GenerationSettings(**worker_fields(tiny_lm_dir, tmp_path / "models"))
    envoy_port, admin_port = free_ports(2)
    body = {"inputs": PHI_TEXT, "parameters": {"max_new_tokens": 4, "temperature": 0}}
    worker_context = serve_generation(settings)
    worker = await worker_context.__aenter__()
    worker_stopped = False
    try:
        async with (
            running_compliance([worker.address], presidio_deidentifier) as compliance,
            running_gateway(tmp_path, compliance.address) as (gateway_address, key),
        ):
            edge_settings = EnvoySettings(port=envoy_port, admin_port=admin_port, base_id=admin_port,
                                          gateway_address=gateway_address,
                                          access_log_path=str(tmp_path / "access.log"))
            with running_edge(edge_settings, tmp_path):
                url = f"http://127.0.0.1:{envoy_port}/models/{MODEL_ID}/predict"
                headers = {"authorization": f"Bearer {key}"}
                async with httpx.AsyncClient(timeout=60) as client:
                    ok = await client.post(url, json=body, headers=headers)
                    assert ok.status_code == 200, ok.text
                    assert ok.json()["metadata"]["tokens_generated"] > 0

                    await worker_context.__aexit__(None, None, None)
                    worker_stopped = True

                    sampled = {**body, "parameters": {"max_new_tokens": 4, "temperature": 0.7}}  # no cache answers
                    down = await client.post(url, json=sampled, headers=headers)
                    assert down.status_code == 503
                    assert "Mary" not in down.text and "536-22-8145" not in down.text
                    models = await client.get(f"http://127.0.0.1:{envoy_port}/models", headers=headers)
                    assert models.status_code == 200
                    unknown = await client.post(f"http://127.0.0.1:{envoy_port}/models/other/predict", json=body,
                                                headers=headers)
                    assert unknown.status_code == 404
    finally:
        if not worker_stopped:
            await worker_context.__aexit__(None, None, None)
