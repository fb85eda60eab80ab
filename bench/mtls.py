"""What mutual TLS inside the mesh costs: two local meshes (`make run` on free ports, real models) side by side
in the same run, one with mesh mTLS on (the default), one with it off (TLS_ENABLED=false), measured alike and
in alternation (rounds on/off, then off/on), so that a busy or drifting machine weighs on both the same:

- cached predict through Envoy (JSON, one client, keep-alive): the embedding model and greedy generation
  answered by the response cache, so the figure is the mesh's own path (Envoy -> gateway -> compliance and
  back; two internal hops, each TLS when on); p50 and p99;
- CPU ms per request per process (utime+stime from /proc, `bench.cpu`) under 16 closed-loop clients:
  new embeddings (misses: compliance -> the embedding worker too, a third hop), then the same again (hits);
- the handshake: a new gRPC connection plus one health check, against one on an open connection (the
  gateway's port; the monitor's certificate when on), p50 of each and their difference.

`MEDAI_BENCH_QUICK=1`: few requests, one round (a smoke run of the benchmark itself, not figures to report).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import statistics
import time

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import cpu
from bench.mesh import running_mesh
from bench.settings import quick
from bench.stats import percentile, summary_ms
from libs.config import EmbeddingSettings, GenerationSettings
from tests.support.local_mesh import LocalMesh
from tests.support.mesh_tls import CertFolder

QUICK = quick()
ROUNDS = 1 if QUICK else 2
SAMPLES = 30 if QUICK else 200  # per round
WARMUP = 5 if QUICK else 20
HANDSHAKES = 10 if QUICK else 60  # per round
CPU_REQUESTS = 64 if QUICK else 512  # per round and scenario
CLIENTS = 16
MESH_ENV = cpu.MESH_ENV
CACHED_TEXT = "Patient reports mild headache and nausea since yesterday, no fever."
MODES = {"mtls_on": True, "mtls_off": False}


async def _cached_predicts(mesh: LocalMesh) -> dict[str, list[float]]:
    """Cache hits through Envoy, both models taking turns, one keep-alive connection."""
    embedding, generation = EmbeddingSettings().model_id, GenerationSettings().model_id
    bodies = {"embedding_hit": (embedding, {"inputs": [CACHED_TEXT]}),
              "generation_hit": (generation, {"inputs": CACHED_TEXT,
                                              "parameters": {"temperature": 0, "max_new_tokens": 16}})}
    samples: dict[str, list[float]] = {name: [] for name in bodies}
    async with httpx.AsyncClient(base_url=mesh.ports.base_url, headers=mesh.auth(), timeout=120) as client:
        async def call(model: str, body: dict) -> dict:
            answer = await client.post(f"/models/{model}/predict", json=body)
            answer.raise_for_status()
            return answer.json()

        for index in range(WARMUP + SAMPLES):
            for name, (model, body) in bodies.items():
                started = time.perf_counter()
                answer = await call(model, body)
                elapsed = time.perf_counter() - started
                if index >= WARMUP:
                    if not answer["metadata"].get("cached"):
                        raise RuntimeError(f"{name}: not answered by the cache")
                    samples[name].append(elapsed)
    return samples


def _gateway_channel(mesh: LocalMesh) -> grpc.aio.Channel:
    address = mesh.ports.address("gateway")
    if not mesh.tls:
        return grpc.aio.insecure_channel(address)
    return CertFolder(mesh.state_dir / "tls").aio_channel(address, "monitor", "gateway")


async def _check(channel: grpc.aio.Channel) -> None:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError("the gateway is not SERVING")


async def _handshakes(mesh: LocalMesh) -> dict[str, list[float]]:
    """A new connection and one call, against one call on an open connection (sequential, alternating)."""
    fresh, reused = [], []
    async with _gateway_channel(mesh) as kept:
        await _check(kept)
        for index in range(WARMUP + HANDSHAKES):
            started = time.perf_counter()
            async with _gateway_channel(mesh) as channel:
                await _check(channel)
            elapsed = time.perf_counter() - started
            started = time.perf_counter()
            await _check(kept)
            again = time.perf_counter() - started
            if index >= WARMUP:
                fresh.append(elapsed)
                reused.append(again)
    return {"new_connection_and_call": fresh, "call_on_open_connection": reused}


def _cpu(mesh: LocalMesh, processes: dict[int, str], round_number: int) -> dict:
    """CPU ms per request per process: new embeddings (misses), then the same again (cache hits)."""
    model = EmbeddingSettings().model_id
    offset = round_number * 1_000_000  # every round's misses are new texts

    def route(number: int) -> tuple[str, dict]:
        return f"/models/{model}/predict", {"inputs": f"mTLS bench: {cpu.sentence(number + offset)}"}

    scenarios = [cpu.Scenario("embedding_misses", CLIENTS, CPU_REQUESTS, 32, route, "distinct sentences"),
                 cpu.Scenario("embedding_hits", CLIENTS, CPU_REQUESTS, 0, route, "the same again: cache answers")]
    return {scenario.name: asyncio.run(cpu.measure(mesh, scenario, processes)) for scenario in scenarios}


class Figures:
    """One mode's measurements, gathered over the rounds."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.handshake: dict[str, list[float]] = collections.defaultdict(list)
        self.cpu: dict[str, list[dict]] = collections.defaultdict(list)

    def add_round(self, mesh: LocalMesh, processes: dict[int, str], round_number: int) -> None:
        for name, samples in asyncio.run(_cached_predicts(mesh)).items():
            self.latency[name] += samples
        for name, samples in asyncio.run(_handshakes(mesh)).items():
            self.handshake[name] += samples
        for name, figures in _cpu(mesh, processes, round_number).items():
            self.cpu[name].append(figures)

    def summary(self) -> dict:
        fresh, reused = self.handshake["new_connection_and_call"], self.handshake["call_on_open_connection"]
        return {
            "cached_predict_via_envoy": {name: summary_ms(values) for name, values in self.latency.items()},
            "handshake_gateway_grpc": {
                "new_connection_and_call": summary_ms(fresh), "call_on_open_connection": summary_ms(reused),
                "connection_setup_p50_ms": round((percentile(fresh, 0.5) - percentile(reused, 0.5)) * 1000, 3)},
            "cpu": {name: _mean_rounds(rounds) for name, rounds in self.cpu.items()},
        }


def _mean_rounds(rounds: list[dict]) -> dict:
    """The rounds' figures of one scenario: CPU ms per request and request rates averaged (equal requests)."""
    processes = rounds[0]["cpu_ms_per_request"]
    return {"clients": rounds[0]["clients"], "requests": sum(r["requests"] for r in rounds), "rounds": len(rounds),
            "requests_per_s": round(statistics.fmean(r["requests_per_s"] for r in rounds), 1),
            "cpu_ms_per_request": {p: round(statistics.fmean(r["cpu_ms_per_request"][p] for r in rounds), 2)
                                   for p in processes}}


def _markdown(results: dict) -> list[str]:
    on, off = results["modes"]["mtls_on"], results["modes"]["mtls_off"]
    lines = ["Cached predict through Envoy (JSON, one keep-alive client), p50 / p99 ms:", "",
             "| path | mTLS on | mTLS off | on - off (p50) |", "|---|---|---|---|"]
    for name in on["cached_predict_via_envoy"]:
        a, b = on["cached_predict_via_envoy"][name], off["cached_predict_via_envoy"][name]
        lines.append(f"| {name} | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} | {b['p50_ms']:.2f} / {b['p99_ms']:.2f} | "
                     f"{a['p50_ms'] - b['p50_ms']:+.2f} |")
    hs_on, hs_off = on["handshake_gateway_grpc"], off["handshake_gateway_grpc"]
    lines += ["", "New gRPC connection + one health check vs one on an open connection (gateway), p50 ms:", "",
              "| | mTLS on | mTLS off |", "|---|---|---|",
              f"| new connection and call | {hs_on['new_connection_and_call']['p50_ms']:.2f} | "
              f"{hs_off['new_connection_and_call']['p50_ms']:.2f} |",
              f"| call on an open connection | {hs_on['call_on_open_connection']['p50_ms']:.2f} | "
              f"{hs_off['call_on_open_connection']['p50_ms']:.2f} |",
              f"| connection setup (difference) | {hs_on['connection_setup_p50_ms']:.2f} | "
              f"{hs_off['connection_setup_p50_ms']:.2f} |"]
    for scenario in on["cpu"]:
        a, b = on["cpu"][scenario], off["cpu"][scenario]
        lines += ["", f"CPU ms per request per process, {scenario} ({a['clients']} clients, {a['requests']} "
                      f"requests in {a['rounds']} rounds; req/s on {a['requests_per_s']}, off {b['requests_per_s']}):",
                  "",
                  "| process | mTLS on | mTLS off | on - off |", "|---|---|---|---|"]
        for process in (*cpu.SERVICES, cpu.OTHER, "total"):
            x, y = a["cpu_ms_per_request"][process], b["cpu_ms_per_request"][process]
            lines.append(f"| {process} | {x:.2f} | {y:.2f} | {x - y:+.2f} |")
    return lines


def run() -> dict:
    results: dict = {"quick": QUICK, "rounds": ROUNDS, "samples_per_round": SAMPLES,
                     "handshakes_per_round": HANDSHAKES, "cpu_requests_per_round": CPU_REQUESTS,
                     "rate_limits": "off", "modes": {}}
    with contextlib.ExitStack() as stack:
        meshes = {mode: stack.enter_context(running_mesh(env=MESH_ENV, tls=tls)) for mode, tls in MODES.items()}
        processes = {mode: cpu.mesh_processes(mesh.marker) for mode, mesh in meshes.items()}
        figures = {mode: Figures() for mode in meshes}
        for round_number in range(ROUNDS):
            order = list(meshes) if round_number % 2 == 0 else list(reversed(meshes))
            for mode in order:
                figures[mode].add_round(meshes[mode], processes[mode], round_number)
        results["modes"] = {mode: figures[mode].summary() for mode in meshes}
    results["markdown"] = _markdown(results)
    return results
