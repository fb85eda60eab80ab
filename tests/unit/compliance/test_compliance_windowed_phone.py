"""The windowed phone recognizer finds what Presidio's whole-text scan finds, at the same offsets."""
from __future__ import annotations

import pytest
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from services.compliance.core.phi.contact import WindowedPhoneRecognizer

TEXTS = [
    "Call the ward at (617) 555-0142 or 617.555.0199 after 5pm.",
    "UK office: +44 20 7946 0958; Paris +33 1 42 68 53 00; Berlin 030 901820.",
    "Seen 03/14/2024, SSN 536-22-8145, MRN 4471223, then phoned 212-555-0134 ext 22.",
    "Bed 12, room 4, 500 mg twice daily, HbA1c 7.2%, Type 2 diabetes.",
    "Pager 555 0100 and mobile +1-202-555-0173, fax 1 (800) 555-0111.",
]


def spans(results):
    return sorted((r.entity_type, r.start, r.end) for r in results)


@pytest.mark.parametrize("text", TEXTS)
def test_same_spans_as_the_whole_text_scan(text):
    stock, windowed = PhoneRecognizer(), WindowedPhoneRecognizer()
    assert spans(windowed.analyze(text, ["PHONE_NUMBER"])) == spans(stock.analyze(text, ["PHONE_NUMBER"]))


def test_finds_a_number_and_leaves_dates_and_ssns_to_their_recognizers():
    text = "Seen 03/14/2024, SSN 536-22-8145, phone 212-555-0134."
    found = [text[r.start:r.end] for r in WindowedPhoneRecognizer().analyze(text, ["PHONE_NUMBER"])]
    assert found == ["212-555-0134"]
