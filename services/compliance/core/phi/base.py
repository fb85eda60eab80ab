"""`RuleRecognizer`: a Presidio recognizer driven by a table of compiled rules.

Each rule is a regex (compiled once, at import) with the entity it finds, a score, and an
optional validator; the span reported is the rule's `value` group, or the whole match. A rule
whose regex is costly to scan for may carry a `gate`: a cheap regex for something every match
holds ("strasse 12"); texts without it skip the rule.
Rules use the `regex` module, so names can be matched by Unicode case (\\p{Lu}).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import regex
from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

Validator = Callable[[str], bool]


@dataclass(frozen=True)
class Rule:
    entity: str
    pattern: regex.Pattern
    score: float
    valid: Validator | None = None
    gate: regex.Pattern | None = None


def rule(entity: str, pattern: str, score: float, valid: Validator | None = None, *, ignore_case: bool = False,
         gate: regex.Pattern | None = None) -> Rule:
    flags = regex.VERSION1 | regex.MULTILINE | (regex.IGNORECASE if ignore_case else 0)
    return Rule(entity, regex.compile(pattern, flags), score, valid, gate)


class RuleRecognizer(LocalRecognizer):
    """Finds spans with `RULES`; subclasses only declare their table (and maybe `accept`)."""

    RULES: Sequence[Rule] = ()

    def __init__(self, supported_language: str = "en") -> None:
        entities = list(dict.fromkeys(r.entity for r in self.RULES))
        super().__init__(supported_entities=entities, supported_language=supported_language,
                         name=type(self).__name__)

    def load(self) -> None:
        """Nothing to load: the rules are compiled at import."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                ) -> list[RecognizerResult]:
        results = []
        gates: dict[int, bool] = {}  # a gate shared by several rules is searched once per text
        metadata = {RecognizerResult.RECOGNIZER_NAME_KEY: self.name, RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}  # noqa: E501
        for item in self.RULES:
            if entities and item.entity not in entities:
                continue
            if item.gate is not None:
                if id(item.gate) not in gates:
                    gates[id(item.gate)] = item.gate.search(text) is not None
                if not gates[id(item.gate)]:
                    continue
            for match in item.pattern.finditer(text, overlapped=False):
                start, end = match.span("value") if "value" in item.pattern.groupindex else match.span()
                if start < 0 or end <= start:
                    continue
                value = text[start:end]
                if (item.valid is None or item.valid(value)) and self.accept(text, start, end, item.entity):
                    results.append(RecognizerResult(item.entity, start, end, item.score,
                                                    recognition_metadata=dict(metadata)))
        return results

    def accept(self, text: str, start: int, end: int, entity: str) -> bool:
        """A last check with the surrounding text (subclasses may refuse look-alikes)."""
        return True


def digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


def luhn_valid(number: str) -> bool:
    total, parity = 0, len(number) % 2
    for index, char in enumerate(number):
        digit = int(char)
        if index % 2 == parity:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0
