"""Identifying numbers: labelled identifiers (MRN, health plan, account, licences, vehicles, devices,
any "Patient ID: ..." / "Acct #..." / "Ref No. ..."), and the ones recognisable by their own shape
(SSN in every format, DEA and NPI by checksum, VIN, GS1 UDI), and any opaque identifier after a cue word
("plan XK4471-22", "VIN" followed by letters only)."""
from __future__ import annotations

import re
from collections.abc import Iterator

import regex
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from services.compliance.core.phi.base import Rule, RuleRecognizer, digits, has_digit, luhn_valid, rule
from services.compliance.core.phi.vocabulary import CODE_WORDS, NOT_PHI, ordinary_word

# entity -> label phrases (case-insensitive) that introduce an identifier of that kind. A label that
# is an ordinary word ("order", "device") only counts with a number word after it ("order #").
_NUMBER_WORD = r"(?:number|num|nbr|no\.?|#|id|code|identifier)"
LABELS: dict[str, tuple[str, ...]] = {
    "MEDICAL_RECORD_NUMBER": (
        r"MRN", r"medical\s+record(?:\s+" + _NUMBER_WORD + ")?", r"med\.?\s*rec\.?(?:\s+" + _NUMBER_WORD + ")?",
        r"chart\s+" + _NUMBER_WORD, r"hospital\s+" + _NUMBER_WORD, r"unit\s+(?:number|no\.?)",
        r"patient\s+(?:id|identifier|number|no\.?|#)", r"pt\.?\s*(?:id|#|no\.?)", r"EMPI", r"MPI",
    ),
    "HEALTH_PLAN_ID": (
        r"member\s+" + _NUMBER_WORD, r"health\s*plan(?:\s+beneficiary)?(?:\s+" + _NUMBER_WORD + ")?",
        r"beneficiary\s+" + _NUMBER_WORD, r"insurance\s+" + _NUMBER_WORD, r"policy(?:\s+" + _NUMBER_WORD + ")?",
        r"subscriber\s+" + _NUMBER_WORD, r"medicare(?:\s+beneficiary)?(?:\s+" + _NUMBER_WORD + ")?", r"MBI", r"HICN",
        r"medicaid(?:\s+" + _NUMBER_WORD + ")?", r"group\s+" + _NUMBER_WORD, r"plan\s+" + _NUMBER_WORD,
    ),
    "ACCOUNT_NUMBER": (
        r"account(?:\s+" + _NUMBER_WORD + ")?", r"acct\.?(?:\s+" + _NUMBER_WORD + ")?", r"a/c",
        r"billing\s+" + _NUMBER_WORD, r"invoice(?:\s+" + _NUMBER_WORD + ")?",
        r"routing\s+" + _NUMBER_WORD, r"card(?:\s+" + _NUMBER_WORD + ")?", r"(?-i:cc)",
    ),
    "LICENSE_NUMBER": (
        r"licen[cs]e(?!\s+plate)(?:\s+" + _NUMBER_WORD + ")?", r"lic\.?(?:\s+" + _NUMBER_WORD + ")?",
        r"certificate(?:\s+" + _NUMBER_WORD + ")?", r"cert\.?\s+" + _NUMBER_WORD,
        r"registration\s+" + _NUMBER_WORD, r"(?-i:DL)", r"driver'?s?\s+licen[cs]e(?:\s+" + _NUMBER_WORD + ")?",
        r"board\s+certification(?:\s+" + _NUMBER_WORD + ")?", r"permit\s+" + _NUMBER_WORD,
    ),
    "DEA_NUMBER": (r"DEA(?:\s+" + _NUMBER_WORD + ")?",),
    "NPI": (r"NPI(?:\s+" + _NUMBER_WORD + ")?",),
    "VEHICLE_ID": (
        r"VIN", r"vehicle\s+identification(?:\s+" + _NUMBER_WORD + ")?", r"licen[cs]e\s+plate(?:\s+" + _NUMBER_WORD
        + ")?", r"plate(?:\s+" + _NUMBER_WORD + ")?", r"tag\s+" + _NUMBER_WORD,
    ),
    "DEVICE_ID": (
        r"serial(?:\s+" + _NUMBER_WORD + ")?", r"(?-i:S/N|SN)", r"device\s+" + _NUMBER_WORD, r"UDI",
        r"implant\s+" + _NUMBER_WORD, r"lot(?:\s+" + _NUMBER_WORD + ")", r"IMEI", r"MAC",
    ),
    "US_SSN": (r"SSN", r"SS#", r"social\s+security(?:\s+" + _NUMBER_WORD + ")?",),
    "ID": (
        r"(?-i:ID)", r"identifier", r"ref(?:erence)?\.?\s*" + _NUMBER_WORD, r"case\s+" + _NUMBER_WORD,
        r"encounter(?:\s+" + _NUMBER_WORD + ")?", r"visit\s+" + _NUMBER_WORD, r"accession(?:\s+" + _NUMBER_WORD
        + ")?", r"specimen\s+" + _NUMBER_WORD, r"order\s+" + _NUMBER_WORD, r"requisition(?:\s+" + _NUMBER_WORD
        + ")?", r"ticket\s+" + _NUMBER_WORD, r"employee\s+" + _NUMBER_WORD, r"badge(?:\s+" + _NUMBER_WORD + ")?",
        r"passport(?:\s+" + _NUMBER_WORD + ")?", r"record\s+" + _NUMBER_WORD, r"file\s+" + _NUMBER_WORD,
        r"confirmation\s+" + _NUMBER_WORD, r"claim\s+" + _NUMBER_WORD, r"(?-i:FIN)", r"(?-i:CSN)", r"tracking\s+" + _NUMBER_WORD,  # noqa: E501
    ),
}
# After the label: ":", "#", "=", "is" and spaces; the identifier itself (letters, digits, inner - . /).
_SEPARATOR = r"\s*(?:[:#=]|\bis\b|\bof\b)?\s*#?\s*"
_VALUE = r"(?P<value>[A-Za-z0-9](?:[A-Za-z0-9]|[-./](?=[A-Za-z0-9])| (?=\d{3,}\b)){2,39})(?![\w-])"


def _identifier(value: str) -> bool:
    """A labelled value is an identifier when it has a digit and is not a bare short number."""
    return has_digit(value) and len(value) >= 4


def _labelled(entity: str, labels: tuple[str, ...]) -> Rule:
    score = 0.8 if entity == "ID" else 0.85  # a specific label ("medical record number") wins over "record number"
    return rule(entity, rf"(?i:\b(?:{'|'.join(labels)}))(?:(?<=#)|(?!\w)){_SEPARATOR}{_VALUE}", score, _identifier)


def _plate(value: str) -> bool:
    return has_digit(value) and len(value.replace(" ", "").replace("-", "")) >= 4


class LabelledIdentifierRecognizer(RuleRecognizer):
    """Any identifier introduced by a label: "MRN: 00123456", "Member ID W123456789", "Acct #4471-22"."""

    RULES = (
        *(_labelled(entity, labels) for entity, labels in LABELS.items()),
        # Plates are written in groups ("license plate 589 LN8", "plate: WR7-K8V").
        rule("VEHICLE_ID", r"(?i:\b(?:licen[cs]e\s+)?(?:plate|tag)(?:\s+(?:number|no\.?|#))?)\s*[:#]?\s*"
                           r"(?P<value>[A-Z0-9]{1,4}(?:[ -][A-Z0-9]{1,5}){1,2})(?![\w-])", 0.85, _plate),
    )


def _dea_valid(value: str) -> bool:
    d = [int(c) for c in value[2:]]
    return len(d) == 7 and (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def _npi_valid(value: str) -> bool:
    return len(value) == 10 and value[0] in "12" and luhn_valid("80840" + value)


_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_VALUES = {**{str(n): n for n in range(10)},
               **dict(zip("ABCDEFGH", range(1, 9), strict=True)), **dict(zip("JKLMN", range(1, 6), strict=True)),
               "P": 7, "R": 9, **dict(zip("STUVWXYZ", range(2, 10), strict=True))}


def vin_check_digit(vin: str) -> str:
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True)) % 11
    return "X" if total == 10 else str(total)


def _vin_valid(value: str) -> bool:
    return vin_check_digit(value) == value[8]


def _vin_like(value: str) -> bool:
    """European VINs carry no check digit: letters and digits mixed is enough at a lower score."""
    return sum(c.isdigit() for c in value) >= 4 and sum(c.isalpha() for c in value) >= 2


def _ssn_shaped(value: str) -> bool:
    return len(digits(value)) == 9


class AnyFormSsnRecognizer(RuleRecognizer):
    """US SSNs in every written form. Unlike Presidio's, sample-looking values (123-45-6789,
    000/666 areas) are kept: for redaction, recall comes first."""

    RULES = (
        rule("US_SSN", r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])", 0.85, _ssn_shaped),
        rule("US_SSN", r"(?<![\w.-])\d{3} \d{2} \d{4}(?![\w.-])", 0.6, _ssn_shaped),
        rule("US_SSN", r"(?<![\w-])\d{3}\.\d{2}\.\d{4}(?![\w-])", 0.6, _ssn_shaped),
    )


class ShapedIdentifierRecognizer(RuleRecognizer):
    """Identifiers recognisable without a label: DEA and NPI (checksums), VINs, GS1 UDIs."""

    RULES = (
        rule("DEA_NUMBER", r"\b[ABCDEFGHJKLMPRSTUX][A-Z9]\d{7}\b", 0.85, _dea_valid),
        rule("NPI", r"(?<![\w-])\d{10}(?![\w-])", 0.5, _npi_valid),
        rule("VEHICLE_ID", r"\b[A-HJ-NPR-Z0-9]{17}\b", 0.9, _vin_valid),
        rule("VEHICLE_ID", r"\b[A-HJ-NPR-Z0-9]{17}\b", 0.6, _vin_like),
        rule("DEVICE_ID", r"\(01\)\d{14}(?:\(\d{2,4}\)[A-Za-z0-9\-./]+)*", 0.95),
        rule("DEVICE_ID", r"(?<!\w)\+[A-Z]\d{3}[A-Z0-9]{4,18}(?:/[A-Z0-9$+%]{2,})?(?!\w)", 0.6),
    )


# Any identifier after a cue word: the cue says "an identifier follows", the value's shape says it is one.
# cue (regex) -> (entity, strong). After a strong cue (a word that names an identifier: "ID", "policy",
# "serial", "VIN") a short value or one of capital letters only is enough; after a weak one (a word with
# other meanings: "plan", "group", "number", "#") the value must look opaque: letters and at least two
# digits, or five digits and more.
CUES: dict[str, tuple[str, bool]] = {
    "plan": ("HEALTH_PLAN_ID", False), "policy": ("HEALTH_PLAN_ID", True), "member": ("HEALTH_PLAN_ID", True),
    "group": ("HEALTH_PLAN_ID", False), "subscriber": ("HEALTH_PLAN_ID", True),
    "beneficiary": ("HEALTH_PLAN_ID", True), "enrollee": ("HEALTH_PLAN_ID", True),
    "coverage": ("HEALTH_PLAN_ID", False), "medicaid": ("HEALTH_PLAN_ID", True), "medicare": ("HEALTH_PLAN_ID", True),
    "account": ("ACCOUNT_NUMBER", True), "acct": ("ACCOUNT_NUMBER", True), "card": ("ACCOUNT_NUMBER", False),
    "invoice": ("ACCOUNT_NUMBER", True), "vin": ("VEHICLE_ID", True), "chassis": ("VEHICLE_ID", True),
    "vehicle": ("VEHICLE_ID", False), "serial": ("DEVICE_ID", True), "s/n": ("DEVICE_ID", True),
    "imei": ("DEVICE_ID", True), "device": ("DEVICE_ID", False), "implant": ("DEVICE_ID", False),
    "license": ("LICENSE_NUMBER", True), "licence": ("LICENSE_NUMBER", True), "permit": ("LICENSE_NUMBER", True),
    "certificate": ("LICENSE_NUMBER", True), "registration": ("LICENSE_NUMBER", False),
    "mrn": ("MEDICAL_RECORD_NUMBER", True), "chart": ("MEDICAL_RECORD_NUMBER", False),
    "record": ("MEDICAL_RECORD_NUMBER", False), "id": ("ID", True), "identifier": ("ID", True), "no.": ("ID", True),
    "nbr": ("ID", True), "num": ("ID", True), "number": ("ID", False), "#": ("ID", False), "ref": ("ID", True),
    "reference": ("ID", True), "claim": ("ID", True), "case": ("ID", False), "ticket": ("ID", True),
    "badge": ("ID", True), "confirmation": ("ID", False), "accession": ("ID", True), "specimen": ("ID", False),
    "order": ("ID", False), "file": ("ID", False), "encounter": ("ID", False), "tracking": ("ID", False),
    "passport": ("ID", True), "contract": ("ID", True), "employee": ("ID", False),
}
# Words (a cue is looked up in CUES: one cheap pass), then what may follow a cue: a number word, a
# separator, the value (letters, digits, inner - . /).
_WORD = re.compile(r"[A-Za-z]+(?:/[A-Za-z]+)?\.?|#")
_AFTER_CUE = re.compile(r"(?:[ \t]+(?i:id|no\.?|number|num|nbr|#)(?![\w/]))?[ \t]*(?:[:=]|\bis\b)?[ \t]*#?[ \t]*"
                        r"(?:\n[ \t]*)?(?P<value>[A-Za-z0-9](?:[A-Za-z0-9]|[-./](?=[A-Za-z0-9])){3,39})(?![\w-])")
# Values after a cue that are no identifiers: doses, decimals, ratios, ICD-10 codes, years, ordinals.
_LOOK_ALIKES = regex.compile(
    r"^(?:\d+(?:\.\d+)?(?i:mg|mcg|g|kg|ml|l|iu|u|units?|meq|mmol|mmhg|cm|mm|x)|\d{1,3}\.\d+|\d{1,3}/\d{1,3}|"
    r"[A-TV-Z]\d{2}(?:\.[A-Z0-9]{1,4})?|(?:19|20)\d{2}|\d+(?i:st|nd|rd|th))$", regex.VERSION1)
# What a number after a cue may be counting instead ("Plan: 40000 units vitamin D weekly").
_UNIT_AFTER = regex.compile(r"[ \t]*(?i:mg|mcg|g|ml|units?|iu|tabs?|tablets?|caps(?:ules)?|kcal|cal|steps|times|"
                            r"x|%|mmhg|lbs?|kg|cc|hours?|hrs?|days?|weeks?|months?|years?|minutes?|mins?)\b",
                            regex.VERSION1)
_CONSONANT_RUN = regex.compile(r"[B-DF-HJ-NP-TV-XZ]{4,}")
_CONSONANT_PAIR = regex.compile(r"(?=([B-DF-HJ-NP-TV-XZ]{2}))")
# Consonant pairs English words are made of ("ST", "NG", "TH"); a code has others ("GD", "FK", "XT").
_WORD_PAIRS = frozenset({"BL", "BR", "CH", "CK", "CL", "CR", "CT", "DR", "FL", "FR", "FT", "GH", "GL", "GN", "GR",
                          "KN", "LB", "LC", "LD", "LF", "LK", "LL", "LM", "LP", "LS", "LT", "LV", "MB", "MM", "MN",
                          "MP", "MS", "NC", "ND", "NG", "NK", "NN", "NS", "NT", "NZ", "PH", "PL", "PP", "PR", "PS",
                          "PT", "RB", "RC", "RD", "RF", "RG", "RK", "RL", "RM", "RN", "RP", "RR", "RS", "RT", "RV",
                          "SC", "SH", "SK", "SL", "SM", "SN", "SP", "SS", "ST", "SW", "TH", "TR", "TS", "TT", "TW",
                          "WH", "WN", "WR", "WS"})
_VIN_SHAPE = regex.compile(r"^[A-HJ-NPR-Z0-9]{17}$")


def _clinical_code(value: str, digit_count: int) -> bool:
    """Clinical terms spelt with a few digits, whose letter runs are all vocabulary."""
    runs = [run.lower() for run in regex.findall(r"[A-Za-z]{2,}", value)]
    return digit_count <= 3 and bool(runs) and all(run in CODE_WORDS or run in NOT_PHI for run in runs)


def _letter_code(value: str) -> bool:
    """Capital letters only, no word: consonant pairs no English word has, or a run of four consonants
    ("TXGPRWDDTGG", "EDCOGDOFKIX"; not "PENDING" or "UNKNOWN"), or a VIN's shape."""
    letters = [c for c in value if c.isalpha()]
    if len(letters) < 6 or not value.isupper() or ordinary_word(value):
        return False
    odd_pairs = sum(pair not in _WORD_PAIRS for pair in _CONSONANT_PAIR.findall(value))
    return odd_pairs >= 2 or _CONSONANT_RUN.search(value) is not None or bool(_VIN_SHAPE.match(value))


def opaque_identifier(value: str, strong: bool) -> bool:
    """Does a value after an identifier cue look like an identifier (see `CUES`)?"""
    if _LOOK_ALIKES.match(value):
        return False
    digit_count = sum(c.isdigit() for c in value)
    letter_count = sum(c.isalpha() for c in value)
    if digit_count and letter_count:
        return (digit_count + letter_count >= (4 if strong else 5) and digit_count >= (1 if strong else 2)
                and not _clinical_code(value, digit_count))
    if digit_count:
        return digit_count >= (4 if strong else 5)
    return strong and _letter_code(value)


def _cue(text: str, word: re.Match) -> tuple[str, bool] | None:
    """The cue a word is (see CUES), if it stands alone ("plan", not "planned" or "a/plan")."""
    start, end = word.span()
    if (start and (text[start - 1].isalnum() or text[start - 1] in "_/")) or \
            (word.group() != "#" and end < len(text) and (text[end].isalnum() or text[end] in "_/")):
        return None
    key = word.group().lower()
    return CUES.get(key) or CUES.get(key.rstrip("."))


def _cued_values(text: str) -> Iterator[tuple[tuple[str, bool], re.Match]]:
    """(the cue's entity and strength, the match of its value) for each cue followed by a value."""
    for word in _WORD.finditer(text):
        cue = _cue(text, word)
        if cue is not None and (match := _AFTER_CUE.match(text, word.end())) is not None:
            yield cue, match


class CuedIdentifierRecognizer(LocalRecognizer):
    """An opaque identifier after any identifier cue ("plan XK4471-22", "VIN KLMNPRSTUVWXYZABC", "member
    09GFQJ909", "sensor #IC995TB29"), in one pass over the text; the cue picks the entity type."""

    SCORE = {True: 0.6, False: 0.55}

    def __init__(self, supported_language: str = "en") -> None:
        entities = list(dict.fromkeys(entity for entity, _ in CUES.values()))
        super().__init__(supported_entities=entities, supported_language=supported_language,
                         name=type(self).__name__)

    def load(self) -> None:
        """Nothing to load: the pattern is compiled at import."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        results = []
        for cue, match in _cued_values(text):
            entity, strong = cue
            value = match.group("value")
            if (entities and entity not in entities) or not opaque_identifier(value, strong) \
                    or (value.isdigit() and _UNIT_AFTER.match(text, match.end())):
                continue
            results.append(RecognizerResult(entity, match.start("value"), match.end("value"), self.SCORE[strong],
                                            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                                  RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results
