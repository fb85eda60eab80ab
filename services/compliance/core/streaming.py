"""Redaction of a token stream with a bounded hold-back window.

Text is released only at whitespace, and only up to the last word that cannot be the start of
a longer PHI value: a trailing run of capitalised words, words with digits, month names, titles,
open brackets or joiners ("," "-" "/") is held until a plain word or a sentence end follows it.
What is released is analysed as one segment together with what is still held (so a value that
straddles the cut is seen whole, and the cut moves before it). The first release happens as soon
as a word is safe (time-to-first-token); later ones wait for `min_release_chars` or a sentence
end, so analysis runs per released segment, never per token. Past `max_hold_chars` the window
is released at the last whitespace outside any detected value. Placeholders continue the
request's (or session's) numbering.
"""
from __future__ import annotations

import regex
from spacy.lang.en.stop_words import STOP_WORDS

from services.compliance.core.deidentify import PlaceholderMap, Redactor, substitute
from services.compliance.core.phi.dates import MONTH
from services.compliance.core.phi.vocabulary import NOT_PHI
from services.compliance.metrics import PHI_ENTITIES_DETECTED

# Words that may begin or continue a PHI value: digits, months, brackets (placeholders), joiners, titles.
_RISKY_WORD = regex.compile(
    rf"^(?:.*\d.*|{MONTH}[,.]?|[\[(#@+].*|.*[\[(]|.*[,/:@-]|(?i:dr|mr|mrs|ms|mx|miss|prof|st|saint|of|de|van|von|"
    rf"at|on|no|ph|tel|fax|apt|suite|unit|box|room|pt|patient|name)\.?:?)$", regex.VERSION1)
_TITLE = regex.compile(r"^(?i:dr|mr|mrs|ms|mx|prof|st|apt|no|pt)\.$")
_SENTENCE_END = regex.compile(r"[.!?]\s|\n")
_COMMON = frozenset(STOP_WORDS) | NOT_PHI


def risky(word: str) -> bool:
    """Could this word be (part of) a PHI value whose rest has not arrived yet?"""
    if _RISKY_WORD.match(word):
        return True
    bare = word.strip(".,;:!?\"'")
    return bool(bare) and bare[0].isupper() and bare.lower() not in _COMMON


class StreamRedactor:
    """Feed deltas in order, release redacted text; `finish()` releases the rest."""

    def __init__(self, redactor: Redactor, placeholders: PlaceholderMap, *, max_hold_chars: int = 160,
                 min_release_chars: int = 24) -> None:
        self._redactor = redactor
        self._placeholders = placeholders
        self._max_hold = max_hold_chars
        self._min_release = min_release_chars
        self._held = ""
        self._released_any = False
        self.entities_found = 0
        self.counts: dict[str, int] = {}

    @property
    def held(self) -> int:
        return len(self._held)

    async def feed(self, delta: str) -> str:
        """Add a delta; the redacted text that may be released now ("" while it is held)."""
        self._held += delta
        cut = self._safe_cut()
        if cut <= 0:
            return ""
        ready = self._held[:cut]
        if self._released_any and len(ready) < self._min_release and not _SENTENCE_END.search(ready) \
                and len(self._held) < self._max_hold:
            return ""
        return await self._release(cut)

    async def finish(self) -> str:
        """Everything still held, redacted."""
        if not self._held:
            return ""
        return await self._release(len(self._held), final=True)

    def _safe_cut(self) -> int:
        """End of the releasable prefix: after the last whitespace that follows a non-risky word."""
        text = self._held
        boundary = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"))
        if boundary < 0:
            return -1 if len(text) < self._max_hold else len(text)
        words = [(m.start(), m.end()) for m in regex.finditer(r"\S+", text[:boundary])]
        for start, end in reversed(words):
            word = text[start:end]
            if not risky(word) or (_SENTENCE_END.match(text, end - 1) and not _TITLE.match(word)):
                return _after_whitespace(text, end)
            if len(text) >= self._max_hold and start == words[0][0]:
                break
        return boundary + 1 if len(text) >= self._max_hold else 0

    async def _release(self, cut: int, *, final: bool = False) -> str:
        """Analyse everything held; release the part before `cut` (moved before any value crossing it)."""
        text = self._held
        (found,) = await self._redactor.find([text])
        for entity in found:
            if entity.start < cut < entity.end:
                cut = entity.start
        if cut <= 0 and not final:
            return ""
        kept = [e for e in found if e.end <= cut]
        released = substitute(text[:cut], kept, self._placeholders, self._redactor.policy)
        for entity in kept:
            self.counts[entity.entity_type] = self.counts.get(entity.entity_type, 0) + 1
            PHI_ENTITIES_DETECTED.labels(entity.entity_type).inc()
        self.entities_found += len(kept)
        self._held = text[cut:]
        self._released_any = self._released_any or bool(released)
        return released


def _after_whitespace(text: str, end: int) -> int:
    while end < len(text) and text[end].isspace():
        end += 1
    return end
