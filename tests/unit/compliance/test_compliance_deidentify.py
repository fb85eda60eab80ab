"""De-identification with the real Presidio analyzer and spaCy model: placeholders, policy, no network."""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import tldextract.tldextract
from prometheus_client import REGISTRY

from libs.errors import NotReady
from services.compliance.core.deidentify import (
    PlaceholderMap,
    RedactionPolicy,
    Redactor,
    resolve_overlaps,
    substitute,
)
from services.compliance.core.types import DetectedEntity

NOTE = ("Patient John Smith (SSN 536-22-8145) called from 617-555-0123 and wrote to john.smith@example.com. "
        "John Smith reports chest pain.")
PHI_VALUES = ("John Smith", "536-22-8145", "617-555-0123", "john.smith@example.com")


@pytest.fixture(scope="module")
def executor():
    with ThreadPoolExecutor(1, thread_name_prefix="deidentify") as pool:
        yield pool


@pytest.fixture
async def redactor(executor, presidio_deidentifier) -> Redactor:
    redactor = Redactor(executor, RedactionPolicy(score_threshold=0.35))
    await redactor.load(lambda: presidio_deidentifier)
    return redactor


def detected(entity_type: str) -> float:
    return REGISTRY.get_sample_value("medai_phi_entities_detected_total", {"entity_type": entity_type}) or 0.0


async def test_names_phones_emails_and_ssn_are_replaced_by_typed_placeholders(redactor):
    placeholders = PlaceholderMap()
    persons_before = detected("PERSON")
    (redaction,) = await redactor.redact([NOTE], placeholders)

    for value in PHI_VALUES:
        assert value not in redaction.text
    assert redaction.text == ("Patient [PERSON_1] (SSN [US_SSN_1]) called from [PHONE_NUMBER_1] and wrote to "
                              "[EMAIL_ADDRESS_1]. [PERSON_1] reports chest pain.")
    assert placeholders.mapping == {
        "[PERSON_1]": "John Smith", "[US_SSN_1]": "536-22-8145", "[PHONE_NUMBER_1]": "617-555-0123",
        "[EMAIL_ADDRESS_1]": "john.smith@example.com",
    }
    # Offsets point into the original text.
    assert {NOTE[e.start:e.end] for e in redaction.entities} == set(PHI_VALUES)
    assert all(0.35 <= e.score <= 1.0 for e in redaction.entities)
    assert detected("PERSON") == persons_before + 2


async def test_same_value_same_placeholder_across_texts_of_a_request(redactor):
    placeholders = PlaceholderMap()
    first, second = await redactor.redact(
        ["Call John Smith at 617-555-0123.", "Mary Jones and John Smith share 617-555-0123."], placeholders
    )
    assert first.text == "Call [PERSON_1] at [PHONE_NUMBER_1]."
    assert second.text == "[PERSON_2] and [PERSON_1] share [PHONE_NUMBER_1]."
    # A new request numbers from 1 again.
    (alone,) = await redactor.redact(["Mary Jones called."], PlaceholderMap())
    assert alone.text == "[PERSON_1] called."


async def test_allowed_types_are_kept_and_threshold_applies(executor, presidio_deidentifier):
    keeps_dates = Redactor(executor, RedactionPolicy(score_threshold=0.35, allowed_types=frozenset({"DATE_TIME"})))
    await keeps_dates.load(lambda: presidio_deidentifier)
    (kept,) = await keeps_dates.redact(["John Smith was admitted on 2024-01-02."], PlaceholderMap())
    assert kept.text == "[PERSON_1] was admitted on 2024-01-02."
    assert [e.entity_type for e in kept.entities] == ["PERSON"]

    strict = Redactor(executor, RedactionPolicy(score_threshold=1.0))
    await strict.load(lambda: presidio_deidentifier)
    (high_only,) = await strict.redact([NOTE], PlaceholderMap())
    assert "[EMAIL_ADDRESS_1]" in high_only.text  # email scores 1.0
    assert "John Smith" in high_only.text  # spaCy's PERSON scores 0.85


async def test_presidio_uses_the_bundled_suffix_list_without_network(redactor, caplog):
    caplog.set_level(logging.DEBUG)
    (redaction,) = await redactor.redact(["Write to jane.roe@example.org or visit https://clinic.example.org"],
                                         PlaceholderMap())
    assert "[EMAIL_ADDRESS_1]" in redaction.text
    # The module-level extractor (the one that downloads the public-suffix list) was never used.
    assert tldextract.tldextract.TLD_EXTRACTOR._extractor is None
    assert not [r for r in caplog.records if r.name.startswith(("tldextract", "urllib3", "requests"))]


async def test_analysis_runs_off_the_event_loop_thread(executor):
    seen: list[int] = []

    class Recording:
        def analyze(self, texts):
            seen.append(threading.get_ident())
            return [[DetectedEntity("PERSON", 0, 4, 0.9)] for _ in texts]

    redactor = Redactor(executor, RedactionPolicy())
    await redactor.load(Recording)
    (redaction,) = await redactor.redact(["Anna is here"], PlaceholderMap())
    assert redaction.text == "[PERSON_1] is here"
    assert seen and threading.get_ident() not in seen


async def test_redact_before_load_is_not_ready(executor):
    with pytest.raises(NotReady):
        await Redactor(executor, RedactionPolicy()).redact(["text"], PlaceholderMap())


def test_overlaps_keep_the_higher_score_then_the_longer_span():
    email = DetectedEntity("EMAIL_ADDRESS", 10, 30, 1.0)
    url = DetectedEntity("URL", 20, 30, 0.5)
    short = DetectedEntity("PERSON", 0, 4, 0.85)
    longer = DetectedEntity("LOCATION", 0, 8, 0.85)
    assert resolve_overlaps([url, short, email, longer]) == [longer, email]


def test_substitute_and_mapping_never_show_values_in_repr():
    placeholders = PlaceholderMap()
    text = "Ann met Bob and Ann"
    entities = [DetectedEntity("PERSON", 0, 3, 0.9), DetectedEntity("PERSON", 8, 11, 0.9),
                DetectedEntity("PERSON", 16, 19, 0.9)]
    assert substitute(text, entities, placeholders) == "[PERSON_1] met [PERSON_2] and [PERSON_1]"
    assert "Ann" not in repr(placeholders) and "Bob" not in repr(placeholders)


@pytest.mark.parametrize(("operator", "expected"), [
    ("placeholder", "[PERSON_1] met [PERSON_2] and [PERSON_1]"),
    ("mask", "******** met ******** and ********"),
    ("remove", " met  and "),
])
def test_operators_replace_every_span(operator, expected):
    text = "Jane Roe met John Doe and Jane Roe"
    entities = [DetectedEntity("PERSON", 0, 8, 0.9), DetectedEntity("PERSON", 13, 21, 0.9),
                DetectedEntity("PERSON", 26, 34, 0.9)]
    policy = RedactionPolicy(operator=operator, hash_key=b"k")
    assert substitute(text, entities, PlaceholderMap(), policy) == expected


def test_hash_operator_is_a_keyed_stable_pseudonym():
    text = "Jane Roe met John Doe and Jane Roe"
    entities = [DetectedEntity("PERSON", 0, 8, 0.9), DetectedEntity("PERSON", 13, 21, 0.9),
                DetectedEntity("PERSON", 26, 34, 0.9)]
    first = substitute(text, entities, PlaceholderMap(), RedactionPolicy(operator="hash", hash_key=b"k1"))
    again = substitute(text, entities, PlaceholderMap(), RedactionPolicy(operator="hash", hash_key=b"k1"))
    other_key = substitute(text, entities, PlaceholderMap(), RedactionPolicy(operator="hash", hash_key=b"k2"))
    pseudonyms = first.split(" met ")[0], first.split(" and ")[1]
    assert first == again and first != other_key
    assert pseudonyms[0] == pseudonyms[1] and pseudonyms[0].startswith("[PERSON:")
    assert "Jane" not in first and "John" not in first


def test_a_span_around_a_known_value_shrinks_to_it_when_only_everyday_words_are_beside_it():
    from services.compliance.core.deidentify import PlaceholderMap, prefer_known_values
    from services.compliance.core.types import DetectedEntity

    placeholders = PlaceholderMap()
    placeholders.placeholder_for("PERSON", "Quentin Zabrowski")
    text = "Tell Quentin Zabrowski to rest. Quentin Zabrowski Kowalczyk called."
    wide = [DetectedEntity("PERSON", 0, 22, 0.85), DetectedEntity("PERSON", 32, 59, 0.85)]
    kept = prefer_known_values(text, wide, placeholders)
    assert [text[e.start:e.end] for e in kept] == ["Quentin Zabrowski", "Quentin Zabrowski Kowalczyk"]
