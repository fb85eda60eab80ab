"""Identifying numbers: labelled identifiers (MRN, health plan, account, licences, vehicles, devices,
any "Patient ID: ..." / "Acct #..." / "Ref No. ..."), and the ones recognisable by their own shape
(SSN in every format, DEA and NPI by checksum, VIN, GS1 UDI)."""
from __future__ import annotations

from services.compliance.core.phi.base import Rule, RuleRecognizer, digits, has_digit, luhn_valid, rule

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
