"""Dates with any element more specific than the year (HIPAA keeps years only), in every usual
written form, with a time of day when one follows; and ages over 89."""
from __future__ import annotations

from services.compliance.core.phi.base import RuleRecognizer, rule

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_ABBREVIATIONS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec")
# Month names capitalised or in capitals ("may" and "march" in lower case are verbs).
MONTH = "(?:" + "|".join(sorted({f for m in _MONTHS + _ABBREVIATIONS for f in (m, m.upper())}, key=len,
                                reverse=True)) + r")\.?"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_TIME = r"(?:(?:[ T]|,\s*|\s+at\s+)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
_CONTEXT = (r"(?i:\b(?:on|since|from|until|till|by|dated?|dob|d\.o\.b\.?|born|admitted|discharged|died|seen|"
            r"visit(?:ed)?|surgery|procedure|expired|deceased|as\s+of|before|after)\b)")


def _numeric_date(value: str) -> bool:
    """Some reading of the first two or last two numbers is a (month, day)."""
    parts = [int(p) for p in value.replace("/", "-").replace(".", "-").split("-")[:3] if p.isdigit()]
    if len(parts) < 2:
        return False
    if len(str(parts[0])) == 4 or parts[0] > 31:  # year first
        return len(parts) == 3 and 1 <= parts[1] <= 12 and 1 <= parts[2] <= 31
    a, b = parts[0], parts[1]
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)


def _date_part(value: str) -> bool:
    return _numeric_date(value.split()[0].split("T")[0])


class ClinicalDateRecognizer(RuleRecognizer):
    """"03/14/1962", "2024-05-02 12:20:39", "March 14, 1962", "14-Mar-62", "14th of March", "March 2024";
    a bare month/day ("on 5/10") only after a date word, so "pain 5/10" survives."""

    RULES = (
        rule("DATE_TIME", r"(?<![\w./-])\d{4}[-/.]\d{1,2}[-/.]\d{1,2}" + _TIME + r"(?![\w/-]|\.\d)", 0.9, _date_part),
        rule("DATE_TIME", r"(?<![\w./-])\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})" + _TIME + r"(?![\w/-]|\.\d)", 0.85,
             _date_part),
        rule("DATE_TIME", rf"\b{MONTH}\s*{_DAY},?\s*(?:'|\u2019)?\d{{2,4}}\b{_TIME}", 0.9),
        rule("DATE_TIME", rf"\b{_DAY}(?:\s+of)?[\s-]*{MONTH}[\s,-]*(?:'|\u2019)?\d{{2,4}}\b{_TIME}", 0.9),
        rule("DATE_TIME", rf"\b{MONTH},?\s+(?:of\s+)?\d{{4}}\b", 0.8),
        rule("DATE_TIME", rf"\b{MONTH}\s*{_DAY}\b{_TIME}", 0.75),
        rule("DATE_TIME", rf"\b{_DAY}(?:\s+of)?\s+{MONTH}(?!\w)", 0.75),
        rule("DATE_TIME", rf"{_CONTEXT}\s+(?P<value>\d{{1,2}}/\d{{1,2}})(?![\w/]|\.\d)", 0.6, _numeric_date),
        rule("DATE_TIME", r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b", 0.4),
    )


_OVER_89 = r"(?P<value>(?:9\d|1[0-2]\d))"


class AgeOver89Recognizer(RuleRecognizer):
    """Ages over 89 ("92-year-old", "aged 95", "age: 101", "94 yo", "in her 90s")."""

    RULES = (
        rule("AGE", rf"\b{_OVER_89}(?:\s*|-)(?i:years?|yrs?|y/o|y\.o\.|yo|y)(?:[\s-](?i:old))?\b", 0.85),
        rule("AGE", rf"(?i:\b(?:age[ds]?|aged))\s*[:=]?\s*{_OVER_89}\b", 0.85),
        rule("AGE", rf"(?<=\p{{L}},[ \t]){_OVER_89}(?=,)", 0.5),
        rule("AGE", rf"\b{_OVER_89}\s*(?:[MF]|(?i:male|female|man|woman|gentleman|lady))\b", 0.6),
        rule("AGE", r"(?i:\bin\s+(?:his|her|their)\s+(?:early\s+|mid\s+|late\s+)?)(?P<value>(?i:nineties|90s|"
                    r"hundreds|100s))", 0.7),
    )
