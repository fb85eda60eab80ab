"""Language-model serving figures with SmolLM2 (greedy, 64 new tokens), the mesh against transformers in process.

(a) one stream through the generation worker's gRPC vs `model.generate` in process (tokens/s ratio);
(b) time to first token through the whole mesh (Envoy, JSON, server-sent events) minus the same in process;
(c) aggregate tokens/s of 8 concurrent streams through the mesh vs `model.generate` on a static batch of the
    same 8 prompts in process (left padding).

The in-process side loads the model that the mesh's workers load (the SmolLM2 conversion in the disk model
cache) and feeds it the token ids the worker feeds it (the prompt in the chat template); the two sides are
measured in turns while the mesh is up, so a change of machine load hits both. Prompts sent through the
mesh are distinct, so no response cache can answer one. Tokens/s count generated tokens up to the first
end-of-sequence. `MEDAI_BENCH_QUICK=1`: 16 tokens, one repetition, two TTFT samples.
"""
from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import httpx
import torch
from prometheus_client.parser import text_string_to_metric_families

from bench.mesh import running_mesh
from bench.settings import quick
from bench.stats import summary_ms
from libs.config import GenerationSettings, ModelSettings
from libs.llm.chat import ChatTemplate
from libs.llm.loader import LoadedModel, load_model
from libs.llm.types import ChatMessage
from medai.generation.v1 import generation_pb2, generation_pb2_grpc
from tests.support.local_mesh import LocalMesh
from tests.support.mesh_tls import mesh_aio_channel, mesh_metrics_text

QUICK = quick()
NEW_TOKENS = 16 if QUICK else 64
REPEATS = 1 if QUICK else 3
TTFT_SAMPLES = 2 if QUICK else 8
STREAMS = 8
SINGLE_PROMPT = "Write a detailed explanation of how the kidneys filter blood and regulate fluid balance."
BATCH_PROMPTS = [
    "Explain in detail how the heart pumps blood through the body.",
    "Describe the stages of wound healing, step by step, at length.",
    "Write a long explanation of how vaccines train the immune system.",
    "Explain how insulin and glucagon keep blood sugar in balance.",
    "Describe in detail what happens in the lungs during breathing.",
    "Write a thorough overview of how antibiotics work against bacteria.",
    "Explain at length how the liver processes medicines and toxins.",
    "Describe the main parts of the nervous system and what each does.",
]
TTFT_TOPICS = ["anemia", "asthma", "migraine", "gout", "eczema", "sepsis", "angina", "scurvy", "rickets", "tetanus"]


def run() -> dict:
    settings = GenerationSettings()
    first_load = _timed_load(settings)[1]  # converts once if the cache is empty; imports transformers' modules
    loaded, load_seconds = _timed_load(settings)
    local = InProcess(loaded)
    with running_mesh() as mesh:
        figures = asyncio.run(measure(mesh, settings.model_id, local))
    one_stream = _rate(figures["single_local"])
    single_worker, batch_local, streams = (_rate(figures[name]) for name in ("single_worker", "batch_local",
                                                                             "streams"))
    return {
        "model": settings.model_source, "quick": QUICK, "new_tokens": NEW_TOKENS, "greedy": True,
        "device": loaded.description.device, "dtype": loaded.description.dtype,
        "torch_threads": torch.get_num_threads(),
        "first_load_seconds": round(first_load, 3),
        "load_from_disk_cache_seconds": round(load_seconds, 3),
        "a_one_stream": {
            "in_process_generate": one_stream,
            "worker_grpc": single_worker,
            "ratio": round(single_worker["tokens_per_s"] / one_stream["tokens_per_s"], 3), "goal": ">= 0.9",
        },
        "b_time_to_first_token": {
            "in_process": summary_ms(figures["ttft_local"]),
            "mesh_envoy_json": summary_ms(figures["ttft_mesh"]),
            "mesh_minus_in_process_p50_ms": round(
                (statistics.median(figures["ttft_mesh"]) - statistics.median(figures["ttft_local"])) * 1000, 3),
        },
        "c_eight_streams": {
            "in_process_static_batch": {**batch_local, "sequences": STREAMS},
            "mesh_concurrent_streams": {**streams, "streams": STREAMS, "mean_batch_size": figures["mean_batch_size"]},
            "ratio": round(streams["tokens_per_s"] / batch_local["tokens_per_s"], 3), "goal": ">= 0.8",
            "mesh_speedup_over_one_stream_in_process": round(streams["tokens_per_s"] / one_stream["tokens_per_s"], 2),
            "static_batch_speedup_over_one_stream": round(batch_local["tokens_per_s"] / one_stream["tokens_per_s"], 2),
        },
    }


async def measure(mesh: LocalMesh, model_id: str, local: InProcess) -> dict:
    """Every figure, the in-process and the mesh side of each taken in turns (so load drifts hit both alike)."""
    figures: dict[str, Any] = {name: [] for name in ("single_local", "single_worker", "ttft_local", "ttft_mesh",
                                                     "batch_local", "streams")}
    headers = {"Authorization": f"Bearer {mesh.key}"}
    async with (httpx.AsyncClient(base_url=mesh.ports.base_url, headers=headers, timeout=600) as client,
                mesh_aio_channel(mesh, "generation", "compliance") as channel):
        worker = generation_pb2_grpc.GenerationStub(channel)
        local.warm_up()
        await _stream_json(client, model_id, "Say hello.", 4)  # first-call paths of every hop
        for _ in range(REPEATS):
            figures["single_local"].append(local.generate([SINGLE_PROMPT]))
            figures["single_worker"].append(await _worker_stream(worker, model_id, SINGLE_PROMPT))
        for topic in TTFT_TOPICS[:TTFT_SAMPLES]:
            prompt = f"In one sentence, what is {topic}?"
            figures["ttft_local"].append(local.time_to_first_token(prompt))
            figures["ttft_mesh"].append((await _stream_json(client, model_id, prompt, 1))["first_event_s"])
        before = await _batch_counts(mesh)
        for repeat in range(REPEATS):
            figures["batch_local"].append(local.generate(BATCH_PROMPTS))
            prompts = [prompt if repeat == 0 else f"{prompt} ({repeat})" for prompt in BATCH_PROMPTS]
            started = time.perf_counter()
            streams = await asyncio.gather(*(_stream_json(client, model_id, p, NEW_TOKENS) for p in prompts))
            figures["streams"].append((sum(s["generated_tokens"] for s in streams), time.perf_counter() - started))
        after = await _batch_counts(mesh)
    passes, rows = after[0] - before[0], after[1] - before[1]
    figures["mean_batch_size"] = round(rows / passes, 2) if passes else 0
    return figures


def _timed_load(settings: GenerationSettings) -> tuple[LoadedModel, float]:
    started = time.perf_counter()
    loaded = load_model(settings.model_source, settings.model_revision, ModelSettings(device="cpu"))
    return loaded, time.perf_counter() - started


class InProcess:
    """transformers alone: `model.generate` on the token ids the worker would decode."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self._chat = ChatTemplate(loaded.tokenizer)
        self._eos = loaded.tokenizer.eos_token_id

    def ids(self, prompt: str) -> list[int]:
        return self._chat.encode([ChatMessage("user", prompt)])

    def warm_up(self) -> None:
        self._generate([self.ids("Hello")], 4)

    def time_to_first_token(self, prompt: str) -> float:
        input_ids = torch.tensor([self.ids(prompt)])
        with torch.inference_mode():
            started = time.perf_counter()
            int(self.model(input_ids=input_ids, use_cache=True).logits[0, -1].argmax())
            return time.perf_counter() - started

    def generate(self, prompts: Sequence[str]) -> tuple[int, float]:
        """(tokens generated, seconds) of one `model.generate` over the prompts as a static batch."""
        batch = [self.ids(prompt) for prompt in prompts]
        started = time.perf_counter()
        rows = self._generate(batch, NEW_TOKENS)
        return sum(_until_eos(row, self._eos) for row in rows), time.perf_counter() - started

    def _generate(self, batch: list[list[int]], new_tokens: int) -> list[list[int]]:
        self.tokenizer.padding_side = "left"
        inputs = self.tokenizer.pad({"input_ids": batch}, return_tensors="pt")
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False,
                                         pad_token_id=self.tokenizer.pad_token_id or self._eos)
        return output[:, inputs["input_ids"].shape[1]:].tolist()


async def _worker_stream(worker: generation_pb2_grpc.GenerationStub, model_id: str, prompt: str) -> tuple[int, float]:
    """(tokens, seconds) of one GenerateStream straight to the generation worker."""
    request = generation_pb2.GenerateRequest(
        model_id=model_id, prompt=prompt,
        parameters=generation_pb2.GenerationParameters(max_new_tokens=NEW_TOKENS, temperature=0))
    started = time.perf_counter()
    chunks = [chunk async for chunk in worker.GenerateStream(request)]
    return chunks[-1].usage.generated_tokens, time.perf_counter() - started


async def _stream_json(client: httpx.AsyncClient, model_id: str, prompt: str, new_tokens: int) -> dict:
    """One predict:stream through Envoy: seconds to the first event, generated tokens."""
    body = {"inputs": prompt, "parameters": {"max_new_tokens": new_tokens, "temperature": 0}}
    started = time.perf_counter()
    first: float | None = None
    last: dict[str, Any] = {}
    async with client.stream("POST", f"/models/{model_id}/predict:stream", json=body) as answer:
        answer.raise_for_status()
        async for line in answer.aiter_lines():
            if line.startswith("data:"):
                first = first if first is not None else time.perf_counter() - started
                last = json.loads(line.removeprefix("data:"))
    if "usage" not in last:
        raise RuntimeError(f"stream ended without usage: {last}")
    return {"first_event_s": first, "generated_tokens": int(last["usage"]["generated_tokens"])}


async def _batch_counts(mesh: LocalMesh) -> tuple[float, float]:
    """(forward passes, rows) of medai_batch_size in the generation worker's own metrics."""
    text = await asyncio.to_thread(mesh_metrics_text, mesh, "generation")
    values = {sample.name: sample.value for family in text_string_to_metric_families(text)
              for sample in family.samples if sample.name.startswith("medai_batch_size")}
    return values.get("medai_batch_size_count", 0.0), values.get("medai_batch_size_sum", 0.0)


def _rate(runs: list[tuple[int, float]]) -> dict:
    """Median tokens/s over runs of (tokens, seconds)."""
    rates = [tokens / seconds for tokens, seconds in runs]
    return {"tokens_per_s": round(statistics.median(rates), 2), "tokens": [tokens for tokens, _ in runs],
            "seconds": [round(seconds, 3) for _, seconds in runs]}


def _until_eos(row: list[int], eos: int | None) -> int:
    """Tokens generated up to and including the first end-of-sequence (generate pads after it)."""
    return row.index(eos) + 1 if eos in row else len(row)
