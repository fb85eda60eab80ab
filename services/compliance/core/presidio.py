"""The Presidio `Deidentifier`: Presidio's analyzer over a spaCy model, built once at startup.

The texts of a batch (one request's, or several concurrent requests' gathered by the batcher)
go through spaCy's `nlp.pipe` together; recognizers then run per text, found names grow over the name
words beside them, and found values are propagated to their other occurrences in the same text.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import spacy
from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, EntityRecognizer, RecognizerResult
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from spacy.tokens import Doc

from services.compliance.core.phi.growth import grow_names
from services.compliance.core.phi.propagation import propagate
from services.compliance.core.recognizers import (
    LANGUAGE,
    RecognizerContext,
    build_registry,
    offline_tld_extractor,
)
from services.compliance.core.types import DetectedEntity

# spaCy NER labels -> Presidio entities. Only people and places: spaCy's dates are mostly relative
# ("next week") and dates are found by pattern; ORG has many false positives ("SSN"); NRP
# (nationality, religion) is not a HIPAA identifier.
NER_MODEL_CONFIGURATION = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON", "PERSON": "PERSON", "FAC": "LOCATION", "LOC": "LOCATION", "GPE": "LOCATION",
        "LOCATION": "LOCATION",
    },
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [],
    "labels_to_ignore": ["ORG", "ORGANIZATION", "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL",
                         "PERCENT", "PRODUCT", "QUANTITY", "WORK_OF_ART", "DATE", "TIME", "NORP"],
}
# Components that feed nothing used here: the parser; the lemmatizer (context words match lower-cased
# text instead: Presidio's enhancer compares by substring) and the attribute ruler (proper nouns are
# read from the tagger's fine-grained tags). Together about a fifth of spaCy's time per note.
SPACY_EXCLUDE = ("parser", "lemmatizer", "attribute_ruler")
# Propagation only spreads values at least this sure (the policy's threshold is applied later); names
# this sure grow over the name words beside them.
PROPAGATION_THRESHOLD = 0.5
GROWTH_THRESHOLD = 0.5


@dataclass(frozen=True)
class PresidioConfig:
    spacy_model: str
    tldextract_cache_dir: Path | None = None


class LeanSpacyNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine, loading the model without the components it does not need."""

    def load(self) -> None:
        self.nlp = {model["lang_code"]: spacy.load(model["model_name"], exclude=list(SPACY_EXCLUDE))
                    for model in self.models}

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        artifacts = super()._doc_to_nlp_artifact(doc, language)
        artifacts.lemmas = [token.lower_ for token in doc]
        return artifacts


_ID = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY


@dataclass(frozen=True)
class _ContextIndex:
    """One text's tokens as the context enhancer looks them up, built once per text (the stock enhancer
    walks the spaCy tokens from the start and searches the keyword list for every result)."""

    token_ends: list[int]
    lemmas: list[str]
    keywords: frozenset[str]

    @classmethod
    def of(cls, artifacts: NlpArtifacts) -> _ContextIndex:
        index = getattr(artifacts, "_medai_context_index", None)
        if index is None:
            ends = [start + len(token) for start, token in zip(artifacts.tokens_indices, artifacts.tokens, strict=True)]
            index = cls(ends, [lemma.lower() for lemma in artifacts.lemmas], frozenset(artifacts.keywords))
            artifacts._medai_context_index = index
        return index


class LeanContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's context enhancer, deep-copying only the results it may change: those of recognizers with
    context words (the stock one copies every result, most of them ours, which have none), and finding a
    result's token and the keywords around it through an index built once per text."""

    def _extract_surrounding_words(self, nlp_artifacts: NlpArtifacts, word: str, start: int) -> list[str]:
        if not nlp_artifacts.tokens:
            return [""]
        index = _ContextIndex.of(nlp_artifacts)
        # The first token ending after the start: the stock search's answer (its tokens are never empty).
        token = bisect_right(index.token_ends, start)
        if token == len(index.token_ends):
            raise ValueError("a detected span lies past the last token")
        backward = self._context_words(index, token, self.context_prefix_count, -1)
        forward = self._context_words(index, token, self.context_suffix_count, 1)
        return list(set(backward + forward))

    @staticmethod
    def _context_words(index: _ContextIndex, token: int, n_words: int, step: int) -> list[str]:
        """Up to n_words + 1 keywords from the token on, in one direction (as the stock `_add_n_words`: the
        token itself counts, for context written onto the value with no space)."""
        words: list[str] = []
        position = token
        while 0 <= position < len(index.lemmas) and len(words) <= n_words:
            if index.lemmas[position] in index.keywords:
                words.append(index.lemmas[position])
            position += step
        return words

    def enhance_using_context(self, text: str, raw_results: list[RecognizerResult], nlp_artifacts: NlpArtifacts,
                              recognizers: list[EntityRecognizer], context: list[str] | None = None,
                              ) -> list[RecognizerResult]:
        with_context = {r.id for r in recognizers if r.context}
        kept = [r for r in raw_results if r.recognition_metadata.get(_ID) not in with_context]
        enhanced = [r for r in raw_results if r.recognition_metadata.get(_ID) in with_context]
        return kept + (super().enhance_using_context(text, enhanced, nlp_artifacts, recognizers, context)
                       if enhanced else [])


class LeanAnalyzerEngine(AnalyzerEngine):
    """Presidio's analyzer, handing each recognizer its own results for recognizer-level context enhancement
    in one pass (the stock one filters every result once per recognizer), and only to recognizers that
    enhance at all."""

    def _enhance_using_context(self, text: str, raw_results: list[RecognizerResult], nlp_artifacts: NlpArtifacts,
                               recognizers: list[EntityRecognizer], context: list[str] | None = None,
                               ) -> list[RecognizerResult]:
        by_recognizer: dict[str, list[RecognizerResult]] = {}
        for result in raw_results:
            by_recognizer.setdefault(result.recognition_metadata[_ID], []).append(result)
        results: list[RecognizerResult] = []
        for recognizer in recognizers:
            own = by_recognizer.get(recognizer.id, [])
            if type(recognizer).enhance_using_context is not EntityRecognizer.enhance_using_context:
                others = [r for r in raw_results if r.recognition_metadata[_ID] != recognizer.id]
                own = recognizer.enhance_using_context(text=text, raw_recognizer_results=own,
                                                       other_raw_recognizer_results=others,
                                                       nlp_artifacts=nlp_artifacts, context=context)
            results.extend(own)
        return self.context_aware_enhancer.enhance_using_context(text=text, raw_results=results,
                                                                 nlp_artifacts=nlp_artifacts,
                                                                 recognizers=recognizers, context=context)


class PresidioDeidentifier:
    """Presidio's analyzer over a spaCy model; a batch of texts goes through spaCy in one `pipe`.

    It reports every span it finds; the Redactor applies the policy (threshold, allowed types).
    """

    def __init__(self, config: PresidioConfig) -> None:
        nlp_engine = LeanSpacyNlpEngine(
            models=[{"lang_code": LANGUAGE, "model_name": config.spacy_model}],
            ner_model_configuration=NerModelConfiguration.from_dict(NER_MODEL_CONFIGURATION),
        )
        nlp_engine.load()
        cache_dir = str(config.tldextract_cache_dir) if config.tldextract_cache_dir else None
        context = RecognizerContext(tld_extractor=offline_tld_extractor(cache_dir))
        registry = build_registry(nlp_engine, context)
        analyzer = LeanAnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=[LANGUAGE],
                                      context_aware_enhancer=LeanContextEnhancer())
        self._batch = BatchAnalyzerEngine(analyzer)

    def analyze(self, texts: Sequence[str]) -> list[list[DetectedEntity]]:
        texts = list(texts)
        results = self._batch.analyze_iterator(texts, language=LANGUAGE, batch_size=max(1, len(texts)))
        return [
            propagate(text, grow_names(text, [DetectedEntity(r.entity_type, r.start, r.end, float(r.score))
                                              for r in found], GROWTH_THRESHOLD), PROPAGATION_THRESHOLD)
            for text, found in zip(texts, results, strict=True)
        ]
