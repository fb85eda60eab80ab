"""spaCy's named entities as Presidio reports them, less what clinical text makes it get wrong
(drug names, eponymous diseases and section headings tagged as people or places)."""
from __future__ import annotations

from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from services.compliance.core.phi.vocabulary import only_common_words

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
