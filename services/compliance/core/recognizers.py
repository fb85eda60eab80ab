"""The recognizer registry: which Presidio recognizers find PHI, and the ones we replace, drop or add.

Presidio's predefined recognizers are the base; `REPLACEMENTS` swaps some by name, `REMOVALS`
drops those that only add false positives here, and `ADDITIONS` adds ours (one small class per
concern, in `services.compliance.core.phi`), so that every HIPAA Safe Harbor category is covered.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import tldextract
from presidio_analyzer import EntityRecognizer, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from services.compliance.core.phi.contact import (
    PhoneFaxRecognizer,
    WebAddressRecognizer,
    WindowedPhoneRecognizer,
    WindowedUrlRecognizer,
)
from services.compliance.core.phi.dates import AgeOver89Recognizer, ClinicalDateRecognizer
from services.compliance.core.phi.gazetteers import (
    CountryPostcodeRecognizer,
    LowerCaseNameRecognizer,
    LowerCaseTextNameRecognizer,
    NameGazetteerRecognizer,
    NameLineRecognizer,
    NameListRecognizer,
    SpeakerLabelRecognizer,
    TownGazetteerRecognizer,
)
from services.compliance.core.phi.geography import (
    AddressLabelRecognizer,
    CityStateZipRecognizer,
    CuedPlaceRecognizer,
    CuedStreetRecognizer,
    EuropeanStreetRecognizer,
    PlaceShapeRecognizer,
    PostalBlockRecognizer,
    PostalCodeRecognizer,
    StreetAddressRecognizer,
)
from services.compliance.core.phi.identifiers import (
    AnyFormSsnRecognizer,
    CuedIdentifierRecognizer,
    LabelledIdentifierRecognizer,
    ShapedIdentifierRecognizer,
)
from services.compliance.core.phi.names import (
    CredentialedNameRecognizer,
    CuedNameRecognizer,
    FacilityRecognizer,
    SubjectNameRecognizer,
    TitledNameRecognizer,
)
from services.compliance.core.phi.ner import (
    ClinicalSpacyRecognizer,
    NameShapedOrgRecognizer,
    ProperNounNameRecognizer,
)

LANGUAGE = "en"
# Country-specific recognizers to load (US identifiers: SSN, ITIN, passport, driver licence, bank).
COUNTRIES = ("us",)


@dataclass(frozen=True)
class RecognizerContext:
    """What recognizer factories may use."""

    tld_extractor: tldextract.TLDExtract
    language: str = LANGUAGE


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's email recognizer validating domains with our offline extractor.

    The stock one calls the module-level `tldextract.extract`, whose first use downloads
    the public-suffix list (and logs failures where there is no network).
    """

    def __init__(self, tld_extractor: tldextract.TLDExtract, supported_language: str = LANGUAGE) -> None:
        super().__init__(supported_language=supported_language)
        self._tld_extractor = tld_extractor

    def validate_result(self, pattern_text: str) -> bool:
        return self._tld_extractor(pattern_text).fqdn != ""


RecognizerFactory = Callable[[RecognizerContext], EntityRecognizer]

# Predefined recognizers replaced by ours, keyed by Presidio's recognizer name.
REPLACEMENTS: dict[str, RecognizerFactory] = {
    "EmailRecognizer": lambda context: OfflineEmailRecognizer(context.tld_extractor, context.language),
    # No DATE/TIME from NER (mostly relative: "next week"), clinical vocabulary is not a name.
    "SpacyRecognizer": lambda context: ClinicalSpacyRecognizer(context.language),
    # Presidio's drops sample-looking SSNs; for redaction, recall comes first.
    "UsSsnRecognizer": lambda context: AnyFormSsnRecognizer(context.language),
    # The same phonenumbers matching, on digit runs only (the stock one scans the whole text per region).
    "PhoneRecognizer": lambda context: WindowedPhoneRecognizer(supported_language=context.language),
    # The same URL patterns, on the runs of text that hold a domain only (the stock one scans every text whole).
    "UrlRecognizer": lambda context: WindowedUrlRecognizer(supported_language=context.language),
    # Every written date form with its time of day; bare years and weekdays are not PHI.
    "DateRecognizer": lambda context: ClinicalDateRecognizer(context.language),
}
# Predefined recognizers dropped: DEA numbers are found by checksum (theirs matches any 2 letters + 7 digits).
REMOVALS: tuple[str, ...] = ("MedicalLicenseRecognizer",)
# Recognizers added to the predefined ones.
ADDITIONS: tuple[RecognizerFactory, ...] = tuple(
    (lambda context, cls=cls: cls(context.language))
    for cls in (
        LabelledIdentifierRecognizer, ShapedIdentifierRecognizer, PhoneFaxRecognizer, AgeOver89Recognizer,
        StreetAddressRecognizer, CityStateZipRecognizer, PostalCodeRecognizer, AddressLabelRecognizer,
        TitledNameRecognizer, CuedNameRecognizer, CredentialedNameRecognizer, FacilityRecognizer,
        NameGazetteerRecognizer, TownGazetteerRecognizer, WebAddressRecognizer, SubjectNameRecognizer,
        LowerCaseNameRecognizer, NameLineRecognizer, SpeakerLabelRecognizer, CountryPostcodeRecognizer,
        CuedPlaceRecognizer, NameListRecognizer, NameShapedOrgRecognizer, EuropeanStreetRecognizer,
        PostalBlockRecognizer, CuedIdentifierRecognizer, ProperNounNameRecognizer, CuedStreetRecognizer,
        PlaceShapeRecognizer, LowerCaseTextNameRecognizer,
    )
)


def offline_tld_extractor(cache_dir: str | None) -> tldextract.TLDExtract:
    """A TLD extractor that uses tldextract's bundled public-suffix snapshot, never the network."""
    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=cache_dir, fallback_to_snapshot=True)
    extractor("example.com")  # loads the snapshot now rather than on the first request
    return extractor


def build_registry(nlp_engine: NlpEngine, context: RecognizerContext) -> RecognizerRegistry:
    """Presidio's predefined recognizers for our language and countries, with ours swapped in."""
    registry = RecognizerRegistry(supported_languages=[context.language])
    with _other_languages_unreported():
        registry.load_predefined_recognizers(languages=[context.language], nlp_engine=nlp_engine,
                                             countries=list(COUNTRIES))
    for name in (*REPLACEMENTS, *REMOVALS):
        registry.remove_recognizer(name, language=context.language)
    for factory in (*REPLACEMENTS.values(), *ADDITIONS):
        registry.add_recognizer(factory(context))
    return registry


class _OtherLanguageFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "language is not supported by registry" not in record.getMessage()


@contextlib.contextmanager
def _other_languages_unreported() -> Iterator[None]:
    """Presidio warns once per recognizer of another language that it skips, as we ask it to."""
    logger, quiet = logging.getLogger("presidio-analyzer"), _OtherLanguageFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
