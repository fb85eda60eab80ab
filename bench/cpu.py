"""CPU milliseconds per request per service: utime + stime of each process of the local mesh (`make run`
on free ports) read from /proc before and after a fixed number of requests, divided by that number, so
the figure does not drift with the machine's speed the way wall time does. Rate limits are off.

Scenarios, each after a warm-up, through Envoy's JSON routes with the dev (admin) key:
- embedding_misses: 16 closed-loop clients, single ten-word sentences, every one distinct;
- embedding_hits: the same sentences again (the response cache answers each);
- deidentify_1kb: 16 clients, distinct 1 KB clinical notes to `/v1/deidentify`;
- generation_32_tokens: 8 clients, distinct prompts, greedy, `max_new_tokens` 32.

Processes are told apart by /proc alone (environment marker MEDAI_TEST_MARKER, then the command line:
`-m services.<name>` or the Envoy binary; anything else marked, the launcher and process manager, is
"other"), so it works under any process manager. Afterwards py-spy samples compliance under another
embedding-miss pass and the gateway under another cache-hit pass, and the report lists where their CPU goes.
Before the mesh starts, the embedding model's own `encode` on batches of 32 in one process gives the
ceiling the mesh's embedding rate is compared with. `MEDAI_BENCH_QUICK=1`: few requests;
`MEDAI_BENCH_CPU_SCENARIOS=embedding_misses,...`: only those scenarios (the ceiling and compliance's profile
come with embedding_misses; embedding_hits answers from the cache only after embedding_misses).
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.deidentify_latency import _notes_of_about
from bench.embedding import CEILING_BATCH, MODEL_SOURCE, in_child
from bench.mesh import running_mesh
from bench.settings import cpu_scenarios, quick
from libs.config import EmbeddingSettings, GenerationSettings
from tests.support.local_mesh import LocalMesh
from tests.support.processes import processes_with_marker

QUICK = quick()
SERVICES = ("envoy", "gateway", "compliance", "generation", "embedding", "conversation", "monitor")
OTHER = "other"
# The dev key has no per-key limit; Envoy's global limit is lifted out of the way.
MESH_ENV = {"ENVOY_LOCAL_RATE_LIMIT_PER_SECOND": "100000"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROFILE_RATE = 200  # py-spy samples per second
TOP = 15
# Profiles taken after the measured passes: report key -> (service, scenario).
PROFILES = {"profile_compliance_embedding_misses": ("compliance", "embedding_misses"),
            "profile_gateway_embedding_hits": ("gateway", "embedding_hits")}
SENTENCE_OPENINGS = (
    "Patient reports mild headache and nausea since yesterday,", "Chest pain eased after rest and two nitroglycerin,",
    "Denies fever, cough or recent travel this month,", "Ankle swelling worse in the evening after walking,",
    "Blood sugar readings stable on the current insulin,", "Shortness of breath on exertion, none at rest,",
    "Rash on both forearms, itchy, started last week,", "Sleeps poorly, wakes twice nightly to pass urine,",
)
GENERATION_TOPICS = ("the kidneys", "the heart", "the lungs", "the liver", "insulin", "vaccines", "antibiotics",
                     "the thyroid", "sleep", "blood pressure", "asthma", "anemia", "migraine", "wound healing")
# The reference of issue 12 (2 cores, 16 clients, 10-word sentences to the embedding model via Envoy JSON,
# 512 requests, rate limits off): CPU ms per request.
REFERENCE = {"compliance": 13.9, "compliance_all_hits": 12.9, "embedding": 11.5, "gateway": 2.3, "envoy": 1.3,
             "total": 29.1, "requests_per_s": "55-74"}


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    requests: int
    warmup: int
    route: Callable[[int], tuple[str, dict]]  # request number -> (path, JSON body)
    note: str
    repeats: bool = False  # its texts are those of an earlier pass (a profiling pass sends them again)


def sentence(number: int) -> str:
    """A distinct ten-word sentence (number >= 0 for measured requests, < 0 for warm-up)."""
    return f"{SENTENCE_OPENINGS[number % len(SENTENCE_OPENINGS)]} visit {number}"


def scenarios() -> list[Scenario]:
    embedding, generation = EmbeddingSettings().model_id, GenerationSettings().model_id
    embed_n, deid_n, gen_n = (64, 32, 8) if QUICK else (512, 256, 64)
    notes = _notes_of_about(1024, deid_n + 8)  # the last 8 for the warm-up (numbers -1 .. -8)
    embed = lambda n: (f"/models/{embedding}/predict", {"inputs": sentence(n)})  # noqa: E731
    return [
        Scenario("embedding_misses", 16, embed_n, 32, embed, "distinct sentences: no cache answers"),
        Scenario("embedding_hits", 16, embed_n, 0, embed, "the misses' sentences again: cache answers", repeats=True),
        Scenario("deidentify_1kb", 16, deid_n, 8,
                 lambda n: ("/v1/deidentify", {"text": notes[n]}),
                 "distinct 1 KB clinical notes"),
        Scenario("generation_32_tokens", 8, gen_n, 4,
                 lambda n: (f"/models/{generation}/predict",
                            {"inputs": f"Explain in detail how {GENERATION_TOPICS[n % len(GENERATION_TOPICS)]} "
                                       f"work, for reader {n}.",
                             "parameters": {"max_new_tokens": 32, "temperature": 0}}),
                 "distinct prompts, greedy, 32 new tokens"),
    ]


def _service_of(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    if argv and Path(argv[0]).name == "envoy":
        return "envoy"
    for flag, module in itertools.pairwise(argv):
        if flag == "-m" and module.startswith("services."):
            name = module.removeprefix("services.")
            return name if name in SERVICES else OTHER
    return OTHER


def mesh_processes(marker: str) -> dict[int, str]:
    """pid -> service, for every process of the mesh (found by its marker)."""
    return {pid: name for pid in processes_with_marker(marker) if (name := _service_of(pid)) is not None}


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def snapshot(processes: dict[int, str]) -> dict[int, float]:
    return {pid: seconds for pid in processes if (seconds := cpu_seconds(pid)) is not None}


async def _load(client: httpx.AsyncClient, scenario: Scenario, numbers: list[int]) -> dict:
    """Closed-loop clients take the numbers in turn; answers' `cached` flags and tokens are counted."""
    queue = collections.deque(numbers)
    counts = collections.Counter()

    async def one_client() -> None:
        while queue:
            path, body = scenario.route(queue.popleft())
            answer = await client.post(path, json=body)
            answer.raise_for_status()
            metadata = answer.json().get("metadata", {})
            counts["cached"] += bool(metadata.get("cached"))
            counts["tokens"] += int(metadata.get("tokens_generated") or 0)
    await asyncio.gather(*(one_client() for _ in range(scenario.clients)))
    return counts


async def measure(mesh: LocalMesh, scenario: Scenario, processes: dict[int, str]) -> dict:
    async with httpx.AsyncClient(base_url=mesh.ports.base_url, headers=mesh.auth(), timeout=300,
                                 limits=httpx.Limits(max_connections=scenario.clients)) as client:
        if scenario.warmup:
            await _load(client, scenario, list(range(-scenario.warmup, 0)))
        before, own_before, started = snapshot(processes), time.process_time(), time.perf_counter()
        counts = await _load(client, scenario, list(range(scenario.requests)))
        wall, own = time.perf_counter() - started, time.process_time() - own_before
        after = snapshot(processes)
    per_service: dict[str, float] = collections.defaultdict(float)
    for pid, name in processes.items():
        if pid in before and pid in after:
            per_service[name] += after[pid] - before[pid]
    n = scenario.requests
    ms = {name: round(per_service.get(name, 0.0) * 1000 / n, 2) for name in (*SERVICES, OTHER)}
    ms["total"] = round(sum(per_service.values()) * 1000 / n, 2)
    figures = {"note": scenario.note, "clients": scenario.clients, "requests": n, "wall_seconds": round(wall, 2),
               "requests_per_s": round(n / wall, 1), "cpu_ms_per_request": ms,
               "bench_client_cpu_ms_per_request": round(own * 1000 / n, 2),
               "cached_share": round(counts["cached"] / n, 3)}
    if counts["tokens"]:
        figures["mean_tokens_generated"] = round(counts["tokens"] / n, 1)
    return figures


def profile_service(mesh: LocalMesh, processes: dict[int, str], scenario: Scenario, service: str) -> dict:
    """py-spy samples of one service under another pass of a scenario (new texts); where its CPU goes."""
    pid = next(pid for pid, name in processes.items() if name == service)
    py_spy = Path(sys.executable).with_name("py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, f"{service}.txt")
        # --gil: only the thread holding the GIL is sampled (py-spy's idle detection does not work on every
        # kernel; threads blocked in queues and selectors would otherwise count as busy).
        recorder = subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--rate", str(PROFILE_RATE),
                                     "--gil", "--format", "raw", "--output", str(out)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started = time.perf_counter()
        try:
            # Numbers the measured passes never used (every text new), too short to look like a phone number.
            offset = 0 if scenario.repeats else 5_000
            again = Scenario(scenario.name, scenario.clients, scenario.requests, 0,
                             lambda n: scenario.route(n + offset), scenario.note)
            asyncio.run(_profile_load(mesh, again))
        finally:
            seconds = time.perf_counter() - started
            recorder.send_signal(signal.SIGINT)
            _, errors = recorder.communicate(timeout=60)
        if not out.exists():
            return {"error": f"py-spy wrote no profile: {errors.strip()[-300:]}"}
        summary = summarise_profile(out.read_text().splitlines(), service)
        summary["gil_held_share_of_wall"] = round(summary["samples"] / (seconds * PROFILE_RATE), 3)
        return summary


async def _profile_load(mesh: LocalMesh, scenario: Scenario) -> None:
    async with httpx.AsyncClient(base_url=mesh.ports.base_url, headers=mesh.auth(), timeout=300) as client:
        await _load(client, scenario, list(range(scenario.requests)))


# Frames every sample of the main thread goes through (entry point, event loop start): no information.
_SCAFFOLDING = ("<frozen runpy>", *(f"services/{name}/__main__.py" for name in SERVICES), "libs/service.py")
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_SITE = re.compile(r".*/(?:site|dist)-packages/")
_ROOT = str(Path(__file__).resolve().parents[1]) + "/"


def _frame_name(frame: str) -> tuple[str, str]:
    """(function with its short file, package or project folder) of one py-spy frame."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), "?"
    file = _SITE.sub("", match.group("file")).removeprefix(_ROOT)
    file = re.sub(r"^.*/lib/python3\.\d+/", "stdlib/", file)
    parts = file.split("/")
    area = "/".join(parts[:3]) if parts[0] in {"services", "libs"} else parts[0] if parts[0] != "stdlib" else \
        f"stdlib/{parts[1].removesuffix('.py')}"
    return f"{match.group('function')} ({file})", area


def _stacks(lines: list[str]) -> Iterator[tuple[list[str], int]]:
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield [frame for frame in stack.split(";") if "(" in frame], int(count)


def summarise_profile(lines: list[str], service: str = "compliance") -> dict:
    """Top functions by own time, project functions by time inside them, and time by package (or project
    module), as shares of the samples."""
    own, inside, areas, total = (collections.Counter(), collections.Counter(), collections.Counter(), 0)
    for frames, count in _stacks(lines):
        if not frames:
            continue
        total += count
        names = [_frame_name(frame) for frame in frames]
        own[names[-1][0]] += count
        for function in {name for name, area in names if area.startswith(("services/", "libs/"))
                         and area not in _SCAFFOLDING}:
            inside[function] += count
        for area in {area for _, area in names if area not in _SCAFFOLDING}:
            areas[area] += count
    share = lambda counter: [(name, round(100 * count / total, 1)) for name, count in counter.most_common(TOP)]  # noqa: E731
    if not total:
        return {"samples": 0}
    return {"process": service, "sampled": "the thread holding the GIL", "samples": total,
            "rate_hz": PROFILE_RATE,
            "top_own_time_percent": share(own), "top_project_functions_inclusive_percent": share(inside),
            "by_package_inclusive_percent": share(areas)}


def _markdown(results: dict) -> list[str]:
    names = list(results["scenarios"])
    rows = ["| process | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for service in (*SERVICES, OTHER, "total"):
        rows.append(f"| {service} | " + " | ".join(
            f"{results['scenarios'][name]['cpu_ms_per_request'][service]:.2f}" for name in names) + " |")
    rows.append("| req/s (wall) | " + " | ".join(f"{results['scenarios'][n]['requests_per_s']}" for n in names) + " |")
    lines = ["CPU ms per request per process (utime+stime from /proc over the measured requests):", "", *rows]
    if "embedding_misses_vs_ceiling" in results:
        lines += ["", f"Embedding misses through Envoy JSON: {results['embedding_misses_vs_ceiling']}x the in-process "
                      f"batch-32 ceiling ({results['ceiling_batch_32_sentences_per_s']} sentences/s, same run)."]
    for key, (service, scenario) in PROFILES.items():
        lines += _profile_lines(results.get(key, {}), service, scenario)
    return lines


def _profile_lines(profile: dict, service: str, scenario: str) -> list[str]:
    if not profile.get("samples"):
        return []
    lines = ["", f"Where {service}'s CPU goes under {scenario} (py-spy --gil: the thread holding the GIL, "
                 f"{profile['samples']} samples, held {100 * profile['gil_held_share_of_wall']:.0f}% of the wall time; "
                 "% of samples, own time):", ""]
    lines += [f"- {pct}% {name}" for name, pct in profile["top_own_time_percent"]]
    lines += ["", "Inclusive (time inside), project functions:", ""]
    lines += [f"- {pct}% {name}" for name, pct in profile["top_project_functions_inclusive_percent"]]
    lines += ["", "Inclusive, by package or project module:", ""]
    lines += [f"- {pct}% {name}" for name, pct in profile["by_package_inclusive_percent"]]
    return lines


def encode_ceiling(batches: int) -> float:
    """Sentences/s of the embedding worker's own `encode` on batches of 32 in this process (run in a child)."""
    from services.embedding.core.model import LoadOptions, load_model
    from services.embedding.core.sources import resolve_source

    with tempfile.TemporaryDirectory() as cache:
        model = load_model(resolve_source(MODEL_SOURCE), LoadOptions(backend="torch", cache_dir=Path(cache)))
        model.encode([sentence(-1 - n) for n in range(CEILING_BATCH)])  # warm-up
        started = time.perf_counter()
        for batch in range(batches):
            model.encode([sentence(100_000 + batch * CEILING_BATCH + n) for n in range(CEILING_BATCH)])
        return round(batches * CEILING_BATCH / (time.perf_counter() - started), 1)


def _embedding_vs_ceiling(results: dict) -> None:
    misses, ceiling = results["scenarios"].get("embedding_misses"), results.get("ceiling_batch_32_sentences_per_s")
    if misses and ceiling:
        results["embedding_misses_vs_ceiling"] = round(misses["requests_per_s"] / ceiling, 3)


def run() -> dict:
    results: dict = {"quick": QUICK, "rate_limits": "off", "reference_issue_12_embedding_ms": REFERENCE,
                     "scenarios": {}}
    wanted = cpu_scenarios()
    plan = [scenario for scenario in scenarios() if not wanted or scenario.name in wanted]
    with_misses = any(scenario.name == "embedding_misses" for scenario in plan)
    if with_misses:
        results["ceiling_batch_32_sentences_per_s"] = in_child(encode_ceiling, 3 if QUICK else 40)
    with running_mesh(env=MESH_ENV) as mesh:
        processes = mesh_processes(mesh.marker)
        results["processes"] = dict(collections.Counter(processes.values()))
        for scenario in plan:
            results["scenarios"][scenario.name] = asyncio.run(measure(mesh, scenario, processes))
        for key, (service, name) in PROFILES.items():
            scenario = next((scenario for scenario in plan if scenario.name == name), None)
            if scenario is not None:
                results[key] = profile_service(mesh, processes, scenario, service)
    _embedding_vs_ceiling(results)
    results["markdown"] = _markdown(results)
    return results
