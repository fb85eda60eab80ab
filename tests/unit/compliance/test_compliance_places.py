"""Places and numbers found by shape and cue: streets with no street type after a where-word, towns no list
holds, postcodes beside a place, names and towns in all-lower-case texts, bare long numbers; each with the
look-alikes that must stay."""
from __future__ import annotations

import pytest

from services.compliance.core.deidentify import RedactionPolicy, resolve_overlaps
from services.compliance.core.phi.contact import PhoneFaxRecognizer
from services.compliance.core.phi.gazetteers import LowerCaseTextNameRecognizer
from services.compliance.core.phi.geography import CuedStreetRecognizer, PostalCodeRecognizer


def found(recognizer_class, text: str) -> list[str]:
    recognizer = recognizer_class()
    recognizer.load()
    return sorted({text[r.start:r.end] for r in recognizer.analyze(text, [])})


CASES = [
    (CuedStreetRecognizer, "Deliver the brace to Vrbická 12 before noon.", ["Vrbická 12"]),
    (CuedStreetRecognizer, "She moved to Hallingsetra 7b, Nordfjord.", ["Hallingsetra 7b, Nordfjord"]),
    (CuedStreetRecognizer, "The pharmacy at 41 Tamsin Brookway is open.", ["41 Tamsin Brookway"]),
    (PostalCodeRecognizer, "Her zip is 60614 and postcode 1012AB.", ["1012AB", "60614"]),
    (PostalCodeRecognizer, "Sent from Falkenried 22418 last week.", ["Falkenried 22418"]),
    (LowerCaseTextNameRecognizer, "ask olga about the refill", ["olga"]),
    (PhoneFaxRecognizer, "Reach her on 44660140 after noon.", ["44660140"]),
]


@pytest.mark.parametrize("recognizer_class,text,expected", CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_finds(recognizer_class, text, expected):
    assert found(recognizer_class, text) == expected


LOOK_ALIKES = [
    (CuedStreetRecognizer, "Transferred to Room 12 at 3 PM; switched to Metformin 500 mg; moved to Phase 2."),
    (CuedStreetRecognizer, "Started on Entresto 24/26 mg; went to Cohort 2; on Day 3 of antibiotics."),
    (CuedStreetRecognizer, "Collision on Route 9; referred to Dr. Lee 5 days ago; up to 3 Tylenol daily."),
    (PostalCodeRecognizer, "Vitamin D 50000 units weekly; Lantus 100 units; Boston 2019 marathon."),
    (LowerCaseTextNameRecognizer, "Olga asked about the refill."),  # capitals in the text: other recognizers'
    (LowerCaseTextNameRecognizer, "will hope to call back in march"),  # everyday words
    (PhoneFaxRecognizer, "HbA1c 7.2%, Na 138, WBC 11.2, ICD-10 E11.9, BP 128/82, 1,250,000 units, 2.5e6."),
]


@pytest.mark.parametrize("recognizer_class,text", LOOK_ALIKES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(LOOK_ALIKES)])
def test_leaves_look_alikes(recognizer_class, text):
    assert found(recognizer_class, text) == []


def test_a_known_name_used_as_a_verb_in_a_lower_case_text_is_no_name(presidio_deidentifier):
    assert redacted(presidio_deidentifier, "her weight rose 2 kg since the visit") == []


def redacted(deidentifier, text: str) -> list[str]:
    policy = RedactionPolicy()
    (entities,) = deidentifier.analyze([text])
    return [text[e.start:e.end] for e in resolve_overlaps([e for e in entities if policy.applies_to(e)])]


WHOLE = [
    # (text, the value that must be redacted whole): towns by their shape, postcodes beside a found place.
    ("The clinic in Marrowmouth closed last year.", "Marrowmouth"),
    ("We drove through New Tavishbury yesterday.", "New Tavishbury"),
    ("He grew up in Lhota nad Sázavou and moved.", "Lhota nad Sázavou"),
    ("Send the records to Springfield, 62704 please.", "Springfield, 62704"),
]


@pytest.mark.parametrize("text,value", WHOLE)
def test_places_are_redacted_whole(presidio_deidentifier, text, value):
    spans = redacted(presidio_deidentifier, text)
    assert any(value in span for span in spans), spans


CLINICAL = [
    "Admitted to the Cardiology Unit in March; Glasgow Coma Scale 14 in the ED.",
    "Follow up in Clinic 3 through Telehealth; labs in 2 weeks, Phase 2 trial.",
]


@pytest.mark.parametrize("text", CLINICAL)
def test_clinical_words_are_no_places(presidio_deidentifier, text):
    assert redacted(presidio_deidentifier, text) == []
