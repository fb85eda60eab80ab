"""Streaming output redaction with the real analyzer: PHI split at every possible chunk boundary is
never emitted, text is released while the stream runs, and placeholders continue the request's."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from services.compliance.core.deidentify import PlaceholderMap, RedactionPolicy, Redactor
from services.compliance.core.streaming import StreamRedactor, risky

PHI_SENTENCES = {
    "617-555-0123": "Please call 617-555-0123 tomorrow.",
    "536-22-8145": "His SSN is 536-22-8145 on file.",
    "March 14, 1962": "She was born on March 14, 1962 in a storm.",
    "john.smith@example.com": "Write to john.smith@example.com for results.",
    "Dr. Okafor": "Ask Dr. Okafor about the plan.",
    "MRN: 00123456": "Chart MRN: 00123456 was updated.",
}


@pytest.fixture(scope="module")
def executor():
    with ThreadPoolExecutor(1) as pool:
        yield pool


@pytest.fixture
async def redactor(executor, presidio_deidentifier) -> Redactor:
    redactor = Redactor(executor, RedactionPolicy())
    await redactor.load(lambda: presidio_deidentifier)
    return redactor


async def stream(redactor: Redactor, pieces: list[str], placeholders: PlaceholderMap | None = None) -> list[str]:
    window = StreamRedactor(redactor, placeholders or PlaceholderMap())
    released = [await window.feed(piece) for piece in pieces]
    released.append(await window.finish())
    return released


@pytest.mark.parametrize("phi", PHI_SENTENCES)
async def test_phi_split_at_every_point_is_never_emitted(redactor, phi):
    sentence = PHI_SENTENCES[phi]
    start = sentence.index(phi)
    sensitive = phi.split(": ")[-1].removeprefix("Dr. ")
    for cut in range(start + 1, start + len(phi)):
        released = "".join(await stream(redactor, [sentence[:cut], sentence[cut:]]))
        assert sensitive not in released, (phi, cut)
        assert sentence[:start] in released or "[" in released


async def test_token_by_token_stream_releases_before_the_end_and_hides_the_name(redactor):
    words = ["The", "patient", "John", "Smith", "was", "seen", "today", "and", "is", "doing", "well", "overall", "."]
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    released = await stream(redactor, pieces)
    text = "".join(released)
    assert "John" not in text and "Smith" not in text and "[PERSON_1]" in text
    first = next(i for i, r in enumerate(released) if r)
    assert first < len(pieces) // 2  # the stream stays live: text left before the last token


async def test_placeholders_continue_the_requests_numbering(redactor):
    placeholders = PlaceholderMap()
    await redactor.redact(["Mary Jones called."], placeholders)
    text = "".join(await stream(redactor, ["Tell Mary ", "Jones and ", "Bob Lee hello ", "there."], placeholders))
    assert text == "Tell [PERSON_1] and [PERSON_2] hello there."


def test_risky_words_are_held():
    for word in ("617-555-", "March", "Dr.", "John", "[PERSON", "14,", "ID:"):
        assert risky(word), word
    for word in ("the", "was", "The", "Please", "tablets"):
        assert not risky(word), word
