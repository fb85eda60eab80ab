"""Gateway figures on the whole local mesh (`make run` on free ports, real models, Presidio):

- cache hit through Envoy vs redaction: a hit still de-identifies its input (the key is the redacted
  text), so the goal is p50(hit) within 5 ms of p50(redaction of the same input). Redaction is timed by
  calling compliance's Deidentify directly over gRPC; hits are timed as JSON through Envoy, for the
  embedding model and for greedy generation.
- gateway + Envoy overhead: per request i (a distinct ~1 KB note each time, so no cache answers), in
  turn: the embedding worker's Embed directly over gRPC, compliance's Deidentify (redaction), compliance's
  Predict directly (redaction, audit, worker), and the JSON predict through Envoy -> gateway -> compliance
  -> worker. gateway_envoy_overhead_i = envoy_i - compliance_i (goal p50 <= 5 ms: it excludes redaction);
  mesh_overhead_excluding_redaction_i = envoy_i - worker_i - redaction_i adds compliance's own proxy and
  audit work. Per-key rate limits are off for the run.

Requests are sequential (one client) on one connection each. `MEDAI_BENCH_QUICK=1`: a few samples
(a smoke run of the benchmark itself, not figures to report).
"""
from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import grpc
import httpx
from google.protobuf import struct_pb2

from bench.mesh import running_mesh
from bench.settings import quick
from bench.stats import percentile, summary_ms
from libs.config import EmbeddingSettings, GenerationSettings
from medai.common.v1 import inference_pb2
from medai.compliance.v1 import compliance_pb2, compliance_pb2_grpc
from medai.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from tests.support.local_mesh import LocalMesh
from tests.support.mesh_tls import mesh_aio_channel

QUICK = quick()
SAMPLES = 20 if QUICK else 300
WARMUP = 3 if QUICK else 20
GOAL_MS = 5.0
# The dev key has no per-key limit; Envoy's global safety net is lifted too.
MESH_ENV = {"ENVOY_LOCAL_RATE_LIMIT_PER_SECOND": "100000"}
CALLER = inference_pb2.Caller(request_id="bench", principal_id="bench", key_name="bench", role="admin")
# About 1 KB of clinical text with the usual identifiers.
NOTE = (
    "Patient John Carter (DOB 03/14/1961, MRN 00482913) was seen at Riverside Clinic on 2024-02-11 by "
    "Dr. Alice Nguyen. He reports two weeks of exertional chest tightness radiating to the left arm, "
    "relieved by rest, with mild shortness of breath and ankle swelling in the evenings. History of type 2 "
    "diabetes and hypertension, on metformin 1000 mg twice daily and lisinopril 20 mg daily. Blood pressure "
    "152/94 mmHg, heart rate 88, oxygen saturation 96 percent on room air. ECG shows sinus rhythm without "
    "acute ST changes. Plan: troponin series, lipid panel, stress test next week, start aspirin 81 mg. "
    "Contact: phone 617-555-0142, email john.carter@example.org, address 12 Elm Street, Springfield. "
    "Follow up with cardiology; return sooner for rest pain, syncope or worsening breathlessness."
)

Timed = Callable[[int], Awaitable[object]]


async def _time(call: Timed, index: int) -> float:
    started = time.perf_counter()
    await call(index)
    return time.perf_counter() - started


class Clients:
    """Every path the benchmark times, over one connection each."""

    def __init__(self, mesh: LocalMesh, http: httpx.AsyncClient, compliance: grpc.aio.Channel,
                 embedding: grpc.aio.Channel) -> None:
        self._base = mesh.ports.base_url
        self._headers = {"authorization": f"Bearer {mesh.key}"}
        self._http = http
        self._compliance = compliance_pb2_grpc.ComplianceStub(compliance)
        self._embedding = embedding_pb2_grpc.EmbeddingStub(embedding)

    async def redact(self, text: str) -> None:
        request = inference_pb2.DeidentifyRequest(text=text)
        await self._compliance.Deidentify(compliance_pb2.ProxyDeidentifyRequest(caller=CALLER, request=request),
                                          timeout=60)

    async def embed_direct(self, text: str) -> None:
        model_id = EmbeddingSettings().model_id
        await self._embedding.Embed(embedding_pb2.EmbedRequest(request_id="bench", model_id=model_id, inputs=[text]),
                                    timeout=60)

    async def predict_compliance(self, model_id: str, inputs: list[str]) -> None:
        request = inference_pb2.PredictRequest(model_id=model_id)
        request.inputs.list_value.values.extend(struct_pb2.Value(string_value=text) for text in inputs)
        await self._compliance.Predict(compliance_pb2.ProxyPredictRequest(caller=CALLER, request=request), timeout=60)

    async def predict(self, model_id: str, body: dict, *, cached: bool | None = None) -> None:
        answer = await self._http.post(f"{self._base}/models/{model_id}/predict", json=body, headers=self._headers)
        answer.raise_for_status()
        if cached is not None and answer.json()["metadata"]["cached"] is not cached:
            raise RuntimeError(f"expected cached={cached} from {model_id}")


def _unique(index: int, path: str) -> str:
    return f"{NOTE} Visit {path}{index}."


async def _cache_hits(clients: Clients) -> dict:
    embedding_model, generation_model = EmbeddingSettings().model_id, GenerationSettings().model_id
    embed_body = {"inputs": [NOTE]}
    generate_body = {"inputs": NOTE, "parameters": {"temperature": 0, "max_new_tokens": 16}}
    await clients.predict(embedding_model, embed_body)  # fills the cache
    await clients.predict(generation_model, generate_body)
    paths: dict[str, Timed] = {
        "redaction_direct_grpc": lambda _: clients.redact(NOTE),
        "embedding_hit_via_envoy": lambda _: clients.predict(embedding_model, embed_body, cached=True),
        "generation_hit_via_envoy": lambda _: clients.predict(generation_model, generate_body, cached=True),
    }
    samples = await _interleaved(paths)
    redaction, hits = samples["redaction_direct_grpc"], samples["embedding_hit_via_envoy"]
    gap = (percentile(hits, 0.5) - percentile(redaction, 0.5)) * 1000
    return {
        **{name: summary_ms(values) for name, values in samples.items()},
        "hit_p50_minus_redaction_p50_ms": round(gap, 3),
        "goal_ms": GOAL_MS,
        "goal_met": gap <= GOAL_MS,
    }


async def _interleaved(paths: dict[str, Timed]) -> dict[str, list[float]]:
    """Each path SAMPLES times, taking turns, so drift of a shared machine hits every path alike."""
    for index in range(WARMUP):
        for call in paths.values():
            await call(-1 - index)  # indexes the measured calls never use
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for index in range(SAMPLES):
        for name, call in paths.items():
            samples[name].append(await _time(call, index))
    return samples


async def _overhead(clients: Clients) -> dict:
    """Per request: the worker, the redaction, compliance's whole proxy path and the edge, each on a
    distinct text (no cache answers), taking turns."""
    model_id = EmbeddingSettings().model_id
    paths: dict[str, Timed] = {
        "worker_direct_grpc": lambda i: clients.embed_direct(_unique(i, "w")),
        "redaction_direct_grpc": lambda i: clients.redact(_unique(i, "r")),
        "compliance_direct_grpc": lambda i: clients.predict_compliance(model_id, [_unique(i, "c")]),
        "via_envoy_json": lambda i: clients.predict(model_id, {"inputs": [_unique(i, "e")]}, cached=False),
    }
    samples = await _interleaved(paths)
    edge = [e - c for e, c in zip(samples["via_envoy_json"], samples["compliance_direct_grpc"], strict=True)]
    mesh = [e - w - r for e, w, r in zip(samples["via_envoy_json"], samples["worker_direct_grpc"],
                                         samples["redaction_direct_grpc"], strict=True)]
    p50 = statistics.median(edge) * 1000
    return {
        "input_bytes": len(_unique(0, "e").encode()),
        **{name: summary_ms(values) for name, values in samples.items()},
        # Envoy (JSON transcoding) + gateway: the edge path minus compliance called directly.
        "gateway_envoy_overhead": _p50_p99(edge),
        # Everything but the model and the redaction (edge, gateway, compliance's proxy and audit).
        "mesh_overhead_excluding_redaction": _p50_p99(mesh),
        "goal_p50_ms": GOAL_MS,
        "goal_met": p50 <= GOAL_MS,
    }


def _p50_p99(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(samples) * 1000, 3), "p99_ms": round(percentile(samples, 0.99) * 1000, 3)}


async def _measure(mesh: LocalMesh) -> dict:
    async with (
        httpx.AsyncClient(timeout=120) as http,
        mesh_aio_channel(mesh, "compliance", "gateway") as compliance,
        mesh_aio_channel(mesh, "embedding", "compliance") as embedding,
    ):
        clients = Clients(mesh, http, compliance, embedding)
        return {"cache_hit": await _cache_hits(clients), "overhead": await _overhead(clients)}


def run() -> dict:
    with running_mesh(env=MESH_ENV) as mesh:
        figures = asyncio.run(_measure(mesh))
    return {"quick": QUICK, "samples": SAMPLES, "seconds_to_serving": round(mesh.seconds_to_serving, 1), **figures}
