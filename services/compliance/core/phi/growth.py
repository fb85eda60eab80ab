"""Growth: a person or place found by any recognizer takes in what belongs to it right beside it.

A recognizer may catch "Quentin" (a known given name) and leave "Zabrowski" standing, or catch a surname
after a title and miss the given name before it. A PERSON span grows over adjacent capitalised
name-shaped words on the same line (initials or particles may sit between), as long as they are no
everyday, clinical, title or organisation words. A place grows over the postcode written right after
it ("Uddevalla 51676", "Castillochester, 47886") or before it ("7368 Karifjord").
"""
from __future__ import annotations

from collections.abc import Iterable

import regex

from services.compliance.core.phi.geography import POSTCODE
from services.compliance.core.phi.vocabulary import NOT_PHI, ORGANISATION_WORDS, ordinary_word
from services.compliance.core.types import DetectedEntity

NAME_TYPES = frozenset({"PERSON"})
PLACE_TYPES = frozenset({"LOCATION", "STREET_ADDRESS"})
MAX_GROWTH_WORDS = 2
_WORD = r"\p{Lu}[\p{Ll}'\u2019-]*\p{Ll}[\p{L}'\u2019-]*"
_CAPS_WORD = r"\p{Lu}[\p{Lu}'\u2019-]+"
_JOIN = (r"(?:[ \t]+(?:\p{Lu}\.?|van|von|de|del|della|der|den|da|das|di|do|dos|du|le|la|ter|ten|zu|bin|ibn|al|y|e))"
         r"{0,2}[ \t]+")
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


# A postcode after a place (not a year: "Boston 2019"), or before one.
_POSTCODE_AFTER = regex.compile(rf"\G,?[ \t]+(?!(?:19|20)\d\d(?![\w-]))(?P<code>{POSTCODE})", regex.VERSION1)
_POSTCODE_BEFORE = regex.compile(rf"(?<![\w-])(?P<code>{POSTCODE}),?[ \t]+$", regex.VERSION1)


def _grown_place(text: str, entity: DetectedEntity) -> DetectedEntity:
    after = _POSTCODE_AFTER.match(text, entity.end)
    before = _POSTCODE_BEFORE.search(text, max(0, entity.start - 16), entity.start)
    if after is None and before is None:
        return entity
    return DetectedEntity(entity.entity_type, before.start() if before else entity.start,
                          after.end() if after else entity.end, entity.score)


def grow_names(text: str, found: Iterable[DetectedEntity], threshold: float) -> list[DetectedEntity]:
    """`found` with each name at or above threshold grown over the name words beside it, and each place
    over the postcode beside it."""
    grown = []
    for entity in found:
        if entity.score >= threshold and entity.entity_type in NAME_TYPES:
            entity = _grown(text, entity)
        elif entity.score >= threshold and entity.entity_type in PLACE_TYPES:
            entity = _grown_place(text, entity)
        grown.append(entity)
    return grown
