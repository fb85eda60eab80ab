"""Phone and fax numbers beyond Presidio's phonenumbers-based recognizer: labelled numbers in any
national format ("Fax: 0490 75 40 81", "Desk: +41 (0)96 471 07 95"), and digit groups shaped like one."""
from __future__ import annotations

import re
from typing import NamedTuple

import phonenumbers
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import PhoneRecognizer, UrlRecognizer

from services.compliance.core.phi.base import RuleRecognizer, digits, rule

_LABEL = (r"(?i:\b(?:phone|tel(?:ephone)?|ph|fax|facsimile|mobile|cell(?:phone)?|pager|beeper|desk|home|work|"
          r"office|contact|call(?:\s+(?:me|him|her|them|back))?(?:\s+(?:at|on))?|reach(?:ed)?\s+(?:me\s+)?at|"
          r"callback|answering\s+at|text(?:\s+me)?(?:\s+at)?|messages\s+to|number|registered)\b)")
_NUMBER = r"(?P<value>(?:\(?\+|\()?\d[\d ().\-/]{4,22}\d(?:\s*(?:x|ext\.?|extension)\s*\d{1,5})?)"
# "... is my cell", "... was her work number": what a number is said to be after it.
_LABEL_AFTER = (r"(?=[ \t]+(?:is|was)[ \t]+(?:my|his|her|their|our|the)[ \t]+(?:(?:new|cell|mobile|home|work|office|"
                r"landline|direct|private|phone|fax|contact)[ \t]*)+(?:number|phone|line)?\b)")


_DATE_SHAPED = re.compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{2}|\d{4}))$")
_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension)\s*\d{1,5}$", re.IGNORECASE)


def _phone_digits(value: str) -> bool:
    return 7 <= len(digits(_EXTENSION.sub("", value))) <= 15 and not _DATE_SHAPED.match(value)



def _grouped(value: str) -> bool:
    groups = [g for g in value.replace(".", " ").replace("-", " ").split() if g]
    return 7 <= len(digits(value)) <= 13 and len(groups) >= 3 and not _DATE_SHAPED.match(value)


class PhoneFaxRecognizer(RuleRecognizer):
    """Phone and fax numbers: labelled in any format ("my number is 54752772", "457-3681 is my cell"),
    North American and international shapes alone, and (lower score) runs of 2-4 digit groups that add
    up to a phone number's length."""

    RULES = (
        rule("PHONE_NUMBER", rf"{_LABEL}\s*(?:number|no\.?|#)?\s*(?:(?:is|was|on|at)\b)?\s*[:.]?\s*\n?\s*{_NUMBER}",
             0.75, _phone_digits),
        rule("PHONE_NUMBER", rf"(?<![\w.,/-]){_NUMBER}{_LABEL_AFTER}", 0.7, _phone_digits),
        # International forms written without groups or with a bracketed trunk or country code:
        # "+441154960200", "+44(0)1154960997", "(+30) 2220 033224", "(351) 925807302".
        rule("PHONE_NUMBER", r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(0?\d{0,4}\)[ .-]?)?|\(\+?\d{1,3}\)[ .-]?)"
                             r"\d(?:[ .-]?\d){5,13}(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![\w-])", 0.7, _phone_digits),
        rule("PHONE_NUMBER", r"(?<![\w-])(?:\+?1[ .-]?|00\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}"
                             r"(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![\w-])", 0.7, _phone_digits),
        rule("PHONE_NUMBER", r"(?<![\w+])\+\d{1,3}[ .-]?(?:\(0?\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]\d{1,4}){1,4}(?![\w-])",
             0.7, _phone_digits),
        rule("PHONE_NUMBER", r"(?<![\w./-])\(\d{2,4}\)\s?\d{2,4}[ .-]\d{2,4}(?:[ .-]\d{2,4})?(?![\w-])", 0.6,
             _phone_digits),
        rule("PHONE_NUMBER", r"(?<![\w./:-])\d{2,4}(?:[ .-]\d{2,4}){2,4}(?![\w/:-]|\.\d)", 0.4, _grouped),
        # A run of eight to twelve digits: a phone number written without groups ("44660140"), or some other
        # identifying number (no lab value or dose has that many digits).
        rule("PHONE_NUMBER", r"(?<![\w.,/:+-])\d{8,12}(?![\w/:-]|[.,]\d)", 0.4),
        # A local number without its area code ("555-0123").
        rule("PHONE_NUMBER", r"(?<![\w.,/:-])\d{3}-\d{4}(?![\w/-]|[.,]\d)", 0.5),
    )


class WebAddressRecognizer(RuleRecognizer):
    """URLs with any top-level domain ("http://www.ross.biz/", "www.clinic.example/portal")."""

    RULES = (rule("URL", r"(?i:\bhttps?://|\bwww\.)[^\s<>\"'()\[\]]+[^\s<>\"'()\[\].,;:!?]", 0.9),)


class _Shifted(NamedTuple):
    """A match's span in the whole text (what `_get_recognizer_result` reads of a phonenumbers match)."""

    start: int
    end: int


class WindowedPhoneRecognizer(PhoneRecognizer):
    """Presidio's phonenumbers-based recognizer, run only on the digit runs of the text.

    The stock one scans the whole text once per region (about 10 ms per KB here); a phone number
    needs at least seven digits, so only windows around such runs are scanned, with one character
    of margin so the matcher still sees what borders the number.
    """

    _CANDIDATE = re.compile(r"\+?\(?\d[\d \t().\-/]{5,}\d(?:\s*(?:x|ext\.?|extension)\s*\d{1,5})?", re.IGNORECASE)
    # Shapes that are never phone numbers here (dates and SSNs have recognizers of their own).
    _SSN_SHAPED = re.compile(r"^\d{3}-\d{2}-\d{4}$")

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
                ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for candidate in self._CANDIDATE.finditer(text):
            value = candidate.group()
            if len(digits(value)) < 7 or self._SSN_SHAPED.match(value) or _DATE_SHAPED.match(value):
                continue
            start = max(0, candidate.start() - 1)
            results += self._window_numbers(text, start, candidate.end() + 1, candidate.start(), candidate.end())
        return EntityRecognizer.remove_duplicates(results)

    def _window_numbers(self, text: str, start: int, end: int, first: int, last: int) -> list[RecognizerResult]:
        """The numbers phonenumbers finds in text[start:end], region by region, stopping at a region that
        matched the whole candidate text[first:last]: any later match lies inside it, scores the same, and
        would be dropped as a duplicate."""
        window, found = text[start:end], []
        for region in self.supported_regions:
            for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=self.leniency):
                found.append(self._get_recognizer_result(_Shifted(match.start + start, match.end + start),
                                                         text, region, None))
            if any(result.start <= first and result.end >= last for result in found):
                break
        return found


class WindowedUrlRecognizer(UrlRecognizer):
    """Presidio's URL recognizer, run only on the runs of non-space characters that hold a dot followed by
    two letters (every URL it finds does: a host and a top-level domain, without spaces). The stock one
    scans the whole text with a pattern of every top-level domain (about 1.5 ms per KB here)."""

    _CANDIDATE = re.compile(r"\S*\.[A-Za-z]{2}\S*")

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                regex_flags: int | None = None) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for candidate in self._CANDIDATE.finditer(text):
            start = max(0, candidate.start() - 1)
            for found in super().analyze(text[start:candidate.end() + 1], entities, None, regex_flags):
                found.start += start
                found.end += start
                results.append(found)
        return results
