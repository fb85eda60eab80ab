"""Name growth: a person found by any recognizer takes in the name words right beside it.

A recognizer may catch "Quentin" (a known given name) and leave "Zabrowski" standing, or catch a surname
after a title and miss the given name before it. A PERSON span grows over adjacent capitalised
name-shaped words on the same line (an initial or a particle may sit between), as long as they are no
everyday, clinical, title or organisation words.
"""
from __future__ import annotations

from collections.abc import Iterable

import regex

from services.compliance.core.phi.vocabulary import NOT_PHI, ORGANISATION_WORDS, ordinary_word
from services.compliance.core.types import DetectedEntity

NAME_TYPES = frozenset({"PERSON"})
MAX_GROWTH_WORDS = 2
_WORD = r"\p{Lu}[\p{Ll}'\u2019-]*\p{Ll}[\p{L}'\u2019-]*"
_CAPS_WORD = r"\p{Lu}[\p{Lu}'\u2019-]+"
_JOIN = r"(?:[ \t]+(?:\p{Lu}\.?|van|von|de|del|der|da|di|le|la|du|bin|ibn|al))?[ \t]+"
# A word after the span ("Quentin| Zabrowski"), and one before it ("Quentin |Zabrowski").
_AFTER = regex.compile(rf"\G{_JOIN}(?P<word>{_WORD})(?![\w'\u2019-])", regex.VERSION1)
_AFTER_CAPS = regex.compile(rf"\G{_JOIN}(?P<word>{_CAPS_WORD})(?![\w'\u2019-])", regex.VERSION1)
_BEFORE = regex.compile(rf"(?<![\w.'\u2019-])(?P<word>{_WORD}){_JOIN}$", regex.VERSION1)
_TITLES = frozenset({"dr", "mr", "mrs", "ms", "mx", "miss", "prof", "professor", "doctor", "nurse", "sister", "rev",
                     "fr", "capt", "sgt", "atty", "sir", "madam", "dame", "lord", "lady"})
_CREDENTIALS = frozenset({"md", "do", "rn", "np", "pa", "phd", "dds", "dmd", "pharmd", "fnp", "lpn", "msw", "lcsw",
                          "crna", "aprn", "jr", "sr", "ii", "iii", "iv"})


def _name_word(word: str) -> bool:
    lower = word.lower()
    return not (ordinary_word(word) or lower in NOT_PHI or lower in _TITLES or lower in _CREDENTIALS
                or lower in ORGANISATION_WORDS)


def _grown(text: str, entity: DetectedEntity) -> DetectedEntity:
    start, end = entity.start, entity.end
    after = _AFTER_CAPS if text[start:end].isupper() else _AFTER
    for _ in range(MAX_GROWTH_WORDS):
        match = after.match(text, end)
        if match is None or not _name_word(match.group("word")) or text.startswith(":", match.end()):
            break
        end = match.end()
    for _ in range(MAX_GROWTH_WORDS):
        match = _BEFORE.search(text, max(0, start - 40), start)
        if match is None or not _name_word(match.group("word")):
            break
        start = match.start()
    if (start, end) == (entity.start, entity.end):
        return entity
    return DetectedEntity(entity.entity_type, start, end, entity.score)


def grow_names(text: str, found: Iterable[DetectedEntity], threshold: float) -> list[DetectedEntity]:
    """`found` with each name at or above threshold grown over the name words beside it."""
    return [_grown(text, e) if e.entity_type in NAME_TYPES and e.score >= threshold else e for e in found]
