"""Value propagation: a value found once is PHI wherever else it appears in the same text.

NER finds "Vanessa P. Hertzog" in one sentence and misses "Vanessa" in the next; a labelled
MRN may be repeated bare further down. Every occurrence of a found value, and of each word
of a found name, is reported too.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from services.compliance.core.phi.vocabulary import NOT_PHI, only_common_words
from services.compliance.core.types import DetectedEntity

PROPAGATED_SCORE = 0.7
MIN_VALUE_CHARS = 4
NAME_TYPES = frozenset({"PERSON"})
# Types too generic to propagate (the same words name other things).
NOT_PROPAGATED = frozenset({"NRP", "ORGANIZATION", "DATE_TIME"})


def _name_parts(value: str) -> list[str]:
    parts = [w.strip(".,'\u2019") for w in value.split()]
    return [w for w in parts if len(w) >= 2 and w[0].isupper() and w.lower() not in NOT_PHI and w.isalpha()]


def _vocabulary_only(value: str) -> bool:
    """Words that are all clinical vocabulary (a number alone is no vocabulary: an MRN spreads)."""
    return any(c.isalpha() for c in value) and only_common_words(value)


def propagate(text: str, found: Iterable[DetectedEntity], threshold: float) -> list[DetectedEntity]:
    """`found` plus every other occurrence of the values (and name words) among those above threshold."""
    found = list(found)
    terms: dict[str, DetectedEntity] = {}
    for entity in sorted(found, key=lambda e: e.score):
        if entity.score < threshold or entity.entity_type in NOT_PROPAGATED:
            continue
        value = text[entity.start:entity.end]
        if _vocabulary_only(value):  # "Dr. Parkinson" is a name, "Parkinson disease" elsewhere is not
            continue
        candidates = [value] + (_name_parts(value) if entity.entity_type in NAME_TYPES else [])
        for term in candidates:
            if len(term) >= MIN_VALUE_CHARS or (entity.entity_type in NAME_TYPES and len(term) >= 2 and term != value):
                terms[term] = entity
    extra = []
    for term, source in terms.items():
        for start in _occurrences(text, term):
            extra.append(DetectedEntity(source.entity_type, start, start + len(term),
                                        min(source.score, PROPAGATED_SCORE)))
    return found + extra


def _word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _occurrences(text: str, term: str) -> Iterator[int]:
    """Where term stands as whole words in text (no letter, digit or underscore on either side)."""
    start = text.find(term)
    while start >= 0:
        end = start + len(term)
        if not (start and _word_char(text[start - 1])) and not (end < len(text) and _word_char(text[end])):
            yield start
        start = text.find(term, start + 1)
