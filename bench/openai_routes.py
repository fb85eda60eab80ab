"""What the OpenAI-compatible routes cost over the mesh's own: the same work through both, timed alternately.

On the whole local mesh (`make run`, real models), one client, sequential requests, one connection per
route: a greedy 16-token generation (`/models/{id}/predict` with the model's chat template vs
`/v1/chat/completions` with one user message: the same prompt tokens, the same output) and one short
embedding (`/models/{id}/predict` vs `/v1/embeddings`). The response cache is off so every call does the
work. Goal: the OpenAI route adds <= 2 ms p50. The generation's own variance (hundreds of ms) swamps a
difference of a few ms, so its figure is an upper bound at best; the embedding one is the telling figure.
`MEDAI_BENCH_QUICK=1`: a few samples.
"""
from __future__ import annotations

import asyncio
import time

import httpx

from bench.mesh import running_mesh
from bench.settings import quick
from bench.stats import percentile, summary_ms
from libs.config import EmbeddingSettings, GenerationSettings

QUICK = quick()
GENERATION_SAMPLES = 5 if QUICK else 60
EMBEDDING_SAMPLES = 20 if QUICK else 400
WARMUP = 2 if QUICK else 10
GOAL_MS = 2.0
MESH_ENV = {"COMPLIANCE_CACHE_ENABLED": "false", "ENVOY_LOCAL_RATE_LIMIT_PER_SECOND": "100000"}
PROMPT = "Name one common symptom of anemia."
SENTENCE = "Patient reports chest pain after climbing two flights of stairs."


def _routes() -> dict[str, dict[str, tuple[str, dict]]]:
    generation, embedding = GenerationSettings().model_id, EmbeddingSettings().model_id
    return {
        "greedy_generation_16_tokens": {
            "predict": (f"/models/{generation}/predict",
                        {"inputs": PROMPT, "parameters": {"max_new_tokens": 16, "temperature": 0}}),
            "openai": ("/v1/chat/completions", {"model": generation, "max_tokens": 16, "temperature": 0,
                                                "messages": [{"role": "user", "content": PROMPT}]}),
        },
        "embedding_one_sentence": {
            "predict": (f"/models/{embedding}/predict", {"inputs": SENTENCE}),
            "openai": ("/v1/embeddings", {"model": embedding, "input": SENTENCE, "encoding_format": "float"}),
        },
    }


async def _timed(http: httpx.AsyncClient, path: str, body: dict) -> float:
    started = time.perf_counter()
    response = await http.post(path, json=body)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


async def _compare(base_url: str, headers: dict, routes: dict[str, tuple[str, dict]], samples: int) -> dict:
    timings: dict[str, list[float]] = {name: [] for name in routes}
    clients = {name: httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) for name in routes}
    try:
        for index in range(WARMUP + samples):
            for name, (path, body) in routes.items():  # alternate, so drift hits both alike
                elapsed = await _timed(clients[name], path, body)
                if index >= WARMUP:
                    timings[name].append(elapsed)
    finally:
        for client in clients.values():
            await client.aclose()
    figures = {name: summary_ms(values) for name, values in timings.items()}
    added = (percentile(timings["openai"], 0.5) - percentile(timings["predict"], 0.5)) * 1000
    return {**figures, "openai_minus_predict_p50_ms": round(added, 3), "goal_ms": GOAL_MS,
            "goal_met": added <= GOAL_MS}


def run() -> dict:
    with running_mesh(env=MESH_ENV) as mesh:
        headers = {"authorization": f"Bearer {mesh.key}"}
        samples = {"greedy_generation_16_tokens": GENERATION_SAMPLES, "embedding_one_sentence": EMBEDDING_SAMPLES}
        return {name: asyncio.run(_compare(mesh.ports.base_url, headers, routes, samples[name]))
                for name, routes in _routes().items()}
