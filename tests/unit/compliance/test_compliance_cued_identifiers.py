"""Identifiers after a cue word in formats no specific recognizer knows, names grown over the name words
beside them, and runs of proper nouns; each with the look-alikes that must stay (doses, labs, codes,
scales, rooms, headings)."""
from __future__ import annotations

import pytest

from services.compliance.core.deidentify import RedactionPolicy, resolve_overlaps
from services.compliance.core.phi.growth import grow_names
from services.compliance.core.phi.identifiers import CuedIdentifierRecognizer, opaque_identifier
from services.compliance.core.types import DetectedEntity


def cued(text: str) -> list[tuple[str, str]]:
    return sorted({(r.entity_type, text[r.start:r.end]) for r in CuedIdentifierRecognizer().analyze(text, [])})


FOUND = [
    ("Coverage under plan QHX-4471-22B since spring.", [("HEALTH_PLAN_ID", "QHX-4471-22B")]),
    ("Insurance plan 88120047753 verified.", [("HEALTH_PLAN_ID", "88120047753")]),
    ("Policy: 7KT3-WW9-20Q", [("HEALTH_PLAN_ID", "7KT3-WW9-20Q")]),
    ("member BDX40921; group 55-ZT-8810", [("HEALTH_PLAN_ID", "55-ZT-8810"), ("HEALTH_PLAN_ID", "BDX40921")]),
    ("car VIN KMHDLRSTNBPXZWCAE towed", [("VEHICLE_ID", "KMHDLRSTNBPXZWCAE")]),
    ("VIN: WVWZZZ1KZAW000123", [("VEHICLE_ID", "WVWZZZ1KZAW000123")]),
    ("pump serial TRKXPLMNQ replaced", [("DEVICE_ID", "TRKXPLMNQ")]),
    ("S/N: QZ-88-1K2", [("DEVICE_ID", "QZ-88-1K2")]),
    ("old sensor #GH204LK88 returned", [("ID", "GH204LK88")]),
    ("account 3321-0098-41 billed", [("ACCOUNT_NUMBER", "3321-0098-41")]),
    ("claim 2024XR77810 filed", [("ID", "2024XR77810")]),
    ("Reference no.\n  AB99-1200", [("ID", "AB99-1200")]),
    ("Badge is K8812", [("ID", "K8812")]),
]


@pytest.mark.parametrize("text,expected", FOUND)
def test_an_opaque_value_after_a_cue_is_an_identifier(text, expected):
    assert cued(text) == expected


LOOK_ALIKES = [
    "Plan: continue aspirin 81 mg, recheck BMP in 1 week.",
    "Plan: 40000 units vitamin D weekly, then 2000 units daily.",
    "Plan: HbA1c in 3 months; plan COVID-19 booster; plan B12 1000 mcg.",
    "ICD-10 code E11.9, Dx I10; CPT 99213 billed.",
    "Group B strep negative; age group 65-74; support group twice weekly.",
    "Room no. 12, bed #4, #2 lancets, dispense #30.",
    "Member ID: PENDING; policy UNKNOWN; serial number UNAVAILABLE.",
    "Case 2 of 3; record 2019; number 12; plan A then plan B.",
    "Pain 5/10 per plan; account of events; card reviewed.",
    "Policy 2024 updated; ECOG 1; CURB-65 score 2; HLA-B27 positive; BRCA1 carrier.",
    "The planned 12345 steps; a/plan 12345.",
]


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_after_cue_words_stay(text):
    assert cued(text) == []


def test_strong_cues_take_shorter_values_and_capital_letter_codes_weak_ones_do_not():
    assert opaque_identifier("K881", strong=True) and not opaque_identifier("K881", strong=False)
    assert opaque_identifier("TRKXPLMNQ", strong=True) and not opaque_identifier("TRKXPLMNQ", strong=False)
    assert opaque_identifier("4471", strong=True) and not opaque_identifier("4471", strong=False)
    assert not opaque_identifier("PENDING", strong=True) and not opaque_identifier("500mg", strong=True)


def found(text: str, value: str, score: float = 0.85) -> DetectedEntity:
    start = text.index(value)
    return DetectedEntity("PERSON", start, start + len(value), score)


def test_a_name_grows_over_the_name_words_beside_it():
    text = "Patient Quentin Zabrowski, phone 617-555-0142, with Dr. Olu Marfenek Jr present."
    grown = grow_names(text, [found(text, "Quentin"), found(text, "Marfenek")], 0.5)
    assert [text[e.start:e.end] for e in grown] == ["Quentin Zabrowski", "Olu Marfenek"]


def test_a_name_does_not_grow_over_titles_headings_clinical_or_everyday_words():
    text = "Seen by Dr. Anna Lee Cardiology today. Nurse Ruth Okafor Reports fine. Metformin Smith Discharge"
    grown = grow_names(text, [found(text, "Anna Lee"), found(text, "Ruth Okafor"), found(text, "Smith")], 0.5)
    assert [text[e.start:e.end] for e in grown] == ["Anna Lee", "Ruth Okafor", "Smith"]
    weak = [found(text, "Anna", score=0.4)]
    assert grow_names(text, weak, 0.5) == weak  # below the threshold nothing grows


def redacted(deidentifier, text: str) -> list[str]:
    policy = RedactionPolicy()
    (found,) = deidentifier.analyze([text])
    return [text[e.start:e.end] for e in resolve_overlaps([e for e in found if policy.applies_to(e)])]


WHOLE_NAMES = [
    # (text, the name that must be redacted whole): a known given name with a surname no list holds, and
    # names no list holds at all, found as proper nouns.
    ("Message from Allison Marquasenko about her refill.", "Allison Marquasenko"),
    ("Claim filed for Tesvoren Ulmarik; review next week.", "Tesvoren Ulmarik"),
    ("Mr. Zorvakian called; Peter Zorvakian is his son.", "Peter Zorvakian"),
]


@pytest.mark.parametrize("text,name", WHOLE_NAMES)
def test_names_are_redacted_whole(presidio_deidentifier, text, name):
    spans = redacted(presidio_deidentifier, text)
    start = text.index(name)
    assert any(text.index(s) <= start and start + len(name) <= text.index(s) + len(s) for s in spans), spans


CLINICAL_TEXT = [
    "Started Entresto 24/26 mg and Jardiance 10 mg; Glasgow Coma Scale 15; Parkinson Disease stable.",
    "Plan: Physical Therapy, Cardiology Follow Up, Discharge Summary sent to Primary Care.",
]


@pytest.mark.parametrize("text", CLINICAL_TEXT)
def test_capitalised_clinical_words_are_no_names(presidio_deidentifier, text):
    assert redacted(presidio_deidentifier, text) == []
