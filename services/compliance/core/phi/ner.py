"""spaCy's named entities as Presidio reports them, less what clinical text makes it get wrong
(drug names, eponymous diseases and section headings tagged as people or places), plus the
people it takes for organisations."""
from __future__ import annotations

import regex
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from services.compliance.core.phi.vocabulary import (
    CONDITIONS,
    DRUGS,
    NOT_PHI,
    ORGANISATION_WORDS,
    only_common_words,
    ordinary_word,
)

# spaCy DATE/TIME are mostly relative ("next week"), NRP and ORG are no HIPAA identifiers: patterns find the rest.
ENTITIES = ["PERSON", "LOCATION"]


class ClinicalSpacyRecognizer(SpacyRecognizer):
    """SpacyRecognizer minus spans made only of clinical vocabulary, with edges trimmed of
    possessives and punctuation so that placeholders replace exactly the name."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_language=supported_language, supported_entities=ENTITIES,
                         name="ClinicalSpacyRecognizer")

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        kept = []
        for result in super().analyze(text, entities, nlp_artifacts):
            value = text[result.start:result.end]
            if only_common_words(value) or not any(c.isalpha() for c in value) or _acronym(value):
                continue
            trimmed = value.rstrip(" .,;:").removesuffix("'s").removesuffix("\u2019s")
            result.end = result.start + len(trimmed)
            kept.append(result)
        return kept


def _acronym(value: str) -> bool:
    """"VIN", "GCS", "ICU" are abbreviations and "Cr 1.1" a lab value, not names or places."""
    return (value.isupper() and len(value) <= 5 and " " not in value) or any(c.isdigit() for c in value)


_NAME_TOKEN = regex.compile(r"\p{Lu}[\p{L}'\u2019-]*\p{Ll}[\p{L}'\u2019-]*$")


class NameShapedOrgRecognizer(LocalRecognizer):
    """People spaCy's small model labels ORG ("Faina D. Yefremova's", "Wisława Szczepańska"): an ORG
    entity of two to four name-shaped words or initials, with no organisation word ("Inc", "Software")
    and no everyday or clinical word in it."""

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=["PERSON"], supported_language=supported_language,
                         name="NameShapedOrgRecognizer")

    def load(self) -> None:
        """Nothing to load: it reads the entities spaCy found."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        results = []
        for entity in nlp_artifacts.tokens.ents:
            words = [t for t in entity if not t.is_punct and t.tag_ != "POS"]
            if entity.label_ == "ORG" and 2 <= len(words) <= 4 and all(_name_shaped(t.text) for t in words):
                results.append(RecognizerResult("PERSON", words[0].idx, words[-1].idx + len(words[-1].text), 0.5,
                                                recognition_metadata={
                                                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results


def _name_shaped(word: str) -> bool:
    if len(word.rstrip(".")) == 1:
        return word[0].isupper()
    return (bool(_NAME_TOKEN.match(word)) and word.lower() not in ORGANISATION_WORDS
            and word.lower() not in NOT_PHI and not ordinary_word(word))


_PROPER_TAGS = frozenset({"NNP", "NNPS"})


class ProperNounNameRecognizer(LocalRecognizer):
    """Two to four adjacent words the tagger calls proper nouns, each name-shaped and none an everyday,
    clinical or organisation word ("for Ethkadar Marprami:", spaCy's PRODUCT): names no list holds; not
    beside an eponym or drug ("Glasgow Coma Scale")."""

    MIN_WORDS, MAX_WORDS = 2, 4
    SCORE = 0.5

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(supported_entities=["PERSON"], supported_language=supported_language,
                         name="ProperNounNameRecognizer")

    def load(self) -> None:
        """Nothing to load: it reads the tags spaCy gave."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        if nlp_artifacts is None or nlp_artifacts.tokens is None:
            return []
        results, run = [], []
        doc = nlp_artifacts.tokens
        for token in [*doc, None]:
            if token is not None and token.tag_ in _PROPER_TAGS and _name_shaped(token.text) \
                    and (not run or token.idx == run[-1].idx + len(run[-1].text) + 1):
                run.append(token)
                continue
            if not run or not (_term_word(doc, run[0].i - 1) or _term_word(doc, run[-1].i + 1)):
                results.extend(self._result(run))
            run = [token] if token is not None and token.tag_ in _PROPER_TAGS and _name_shaped(token.text) else []
        return results

    def _result(self, run: list) -> list[RecognizerResult]:
        while run and len(run[-1].text.rstrip(".")) == 1:  # initials belong to a name, not at its ends
            run = run[:-1]
        while run and len(run[0].text.rstrip(".")) == 1:
            run = run[1:]
        if not self.MIN_WORDS <= len(run) <= self.MAX_WORDS:
            return []
        start, end = run[0].idx, run[-1].idx + len(run[-1].text)
        return [RecognizerResult("PERSON", start, end, self.SCORE, recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: self.name, RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id})]


def _term_word(doc, index: int) -> bool:
    """Is the token at index a capitalised eponym or drug ("Glasgow", "Parkinson")?"""
    if not 0 <= index < len(doc):
        return False
    word = doc[index].text
    return word[:1].isupper() and word.lower().removesuffix("'s") in CONDITIONS | DRUGS
