"""The windowed URL recognizer finds what Presidio's whole-text scan finds, at the same offsets and scores."""
from __future__ import annotations

import pytest
from presidio_analyzer.predefined_recognizers import UrlRecognizer

from services.compliance.core.phi.contact import WindowedUrlRecognizer

TEXTS = [
    "Results at https://portal.clinic.biz/results/77, or www.example.org/portal.",
    "See 'www.x.com' or \"https://a.b.org/x?y=1\" and mail jo@ex.co.uk today.",
    "Bare domains: clinic.health, example.com. Not these: e.g. p.o. q.d. Dr. Smith, 7.2%, v1.2.",
    "Login from 192.168.10.24; HbA1c 7.2%, Na 138, Cr 1.1, metformin 500 mg p.o. b.i.d.",
    "x.com",
    "",
]


def spans(results):
    return sorted((r.entity_type, r.start, r.end, r.score) for r in results)


@pytest.mark.parametrize("text", TEXTS)
def test_same_spans_as_the_whole_text_scan(text):
    stock, windowed = UrlRecognizer(), WindowedUrlRecognizer()
    assert spans(windowed.analyze(text, ["URL"])) == spans(stock.analyze(text, ["URL"]))


def test_finds_urls_and_bare_domains():
    text = "Results at https://portal.clinic.org/results/77 and example.com."
    found = {text[r.start:r.end] for r in WindowedUrlRecognizer().analyze(text, ["URL"])}
    assert found == {"https://portal.clinic.org/results/77", "example.com"}
