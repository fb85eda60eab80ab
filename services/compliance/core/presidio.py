"""The Presidio `Deidentifier`: Presidio's analyzer over a spaCy model, built once at startup."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider

from services.compliance.core.recognizers import (
    LANGUAGE,
    RecognizerContext,
    build_registry,
    offline_tld_extractor,
)
from services.compliance.core.types import DetectedEntity

# spaCy NER labels -> Presidio entities (Presidio's default.yaml, with ORG ignored: many false
# positives such as "SSN"; HIPAA's identifiers are people, places, dates and numbers).
NER_MODEL_CONFIGURATION = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON", "PERSON": "PERSON", "NORP": "NRP", "FAC": "LOCATION", "LOC": "LOCATION",
        "GPE": "LOCATION", "LOCATION": "LOCATION", "DATE": "DATE_TIME", "TIME": "DATE_TIME",
    },
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [],
    "labels_to_ignore": ["ORG", "ORGANIZATION", "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL",
                         "PERCENT", "PRODUCT", "QUANTITY", "WORK_OF_ART"],
}


@dataclass(frozen=True)
class PresidioConfig:
    spacy_model: str
    tldextract_cache_dir: Path | None = None


class PresidioDeidentifier:
    """Presidio's analyzer over a spaCy model, texts of one request analysed as one batch.

    It reports every span it finds; the Redactor applies the policy (threshold, allowed types).
    """

    def __init__(self, config: PresidioConfig) -> None:
        nlp_engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": LANGUAGE, "model_name": config.spacy_model}],
            "ner_model_configuration": NER_MODEL_CONFIGURATION,
        }).create_engine()
        cache_dir = str(config.tldextract_cache_dir) if config.tldextract_cache_dir else None
        context = RecognizerContext(tld_extractor=offline_tld_extractor(cache_dir))
        registry = build_registry(nlp_engine, context)
        analyzer = AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=[LANGUAGE])
        self._batch = BatchAnalyzerEngine(analyzer)

    def analyze(self, texts: Sequence[str]) -> list[list[DetectedEntity]]:
        results = self._batch.analyze_iterator(list(texts), language=LANGUAGE, batch_size=max(1, len(texts)))
        return [[DetectedEntity(r.entity_type, r.start, r.end, float(r.score)) for r in found] for found in results]
