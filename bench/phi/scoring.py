"""Recall and precision of PHI redaction, per entity type.

Recall: a labelled span counts as caught when none of its letters or digits survive, i.e. every
alphanumeric character lies inside some redacted span (whitespace and punctuation left between
redacted pieces reveal nothing). Precision: a redacted span counts as right when it overlaps a
labelled span of any type (what matters for a redactor is that it removed PHI, not the label it
used), reported per HIPAA category of the redactor's entity type. Utility: a span of clinical content
(`Sample.keep`: drug, dose, lab value, code, diagnosis, scale) counts as intact when no letter or digit
of it was redacted.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    label: str
    start: int
    end: int


@dataclass(frozen=True)
class Sample:
    text: str
    spans: tuple[Span, ...]
    group: str = ""  # template id: tuning uses some groups, measuring the others
    keep: tuple[Span, ...] = ()  # clinical content that must survive redaction


@dataclass
class Tally:
    caught: int = 0
    total: int = 0
    true_predictions: int = 0
    predictions: int = 0
    missed_examples: list[str] = field(default_factory=list)
    false_examples: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return round(self.caught / self.total, 4) if self.total else None

    @property
    def precision(self) -> float | None:
        return round(self.true_predictions / self.predictions, 4) if self.predictions else None


@dataclass
class Utility:
    """How much clinical content survived redaction."""

    intact: int = 0
    total: int = 0
    damaged_examples: list[str] = field(default_factory=list)

    @property
    def share(self) -> float | None:
        return round(self.intact / self.total, 4) if self.total else None


def caught(text: str, span: Span, covered: Sequence[bool]) -> bool:
    return all(covered[i] for i in range(span.start, span.end) if text[i].isalnum())


def score(samples: Iterable[Sample], predict: Callable[[list[str]], list[list[Span]]], *,
          relevant: Callable[[Sample, Span], str | None], category: Callable[[str], str],
          batch_size: int = 64, examples: int = 0, utility: Utility | None = None) -> dict[str, Tally]:
    """Per category tallies; `relevant` maps a labelled span to its category (None: not scored).
    `utility`, when given, counts the samples' clinical content left intact."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    samples = list(samples)
    for first in range(0, len(samples), batch_size):
        batch = samples[first:first + batch_size]
        for sample, predicted in zip(batch, predict([s.text for s in batch]), strict=True):
            covered = _tally(sample, predicted, tallies, relevant, category, examples)
            if utility is not None:
                _tally_utility(sample, covered, utility, examples)
    return dict(sorted(tallies.items()))


def _tally(sample: Sample, predicted: list[Span], tallies: dict[str, Tally],
           relevant: Callable[[Sample, Span], str | None], category: Callable[[str], str], examples: int,
           ) -> list[bool]:
    covered = [False] * len(sample.text)
    for span in predicted:
        for i in range(span.start, span.end):
            covered[i] = True
    for span in sample.spans:
        name = relevant(sample, span)
        if name is None:
            continue
        tally = tallies[name]
        tally.total += 1
        if caught(sample.text, span, covered):
            tally.caught += 1
        elif len(tally.missed_examples) < examples:
            tally.missed_examples.append(f"{sample.text[span.start:span.end]!r} in {sample.text[:160]!r}")
    for span in predicted:
        tally = tallies[category(span.label)]
        tally.predictions += 1
        if any(span.start < gold.end and gold.start < span.end for gold in sample.spans):
            tally.true_predictions += 1
        elif len(tally.false_examples) < examples:
            tally.false_examples.append(f"{sample.text[span.start:span.end]!r} ({span.label}) in "
                                        f"{sample.text[:160]!r}")
    return covered


def _tally_utility(sample: Sample, covered: Sequence[bool], utility: Utility, examples: int) -> None:
    for span in sample.keep:
        utility.total += 1
        if not any(covered[i] for i in range(span.start, span.end) if sample.text[i].isalnum()):
            utility.intact += 1
        elif len(utility.damaged_examples) < examples:
            utility.damaged_examples.append(f"{sample.text[span.start:span.end]!r} in {sample.text[:160]!r}")


def overall(tallies: dict[str, Tally], names: Iterable[str] | None = None) -> Tally:
    total = Tally()
    for name, tally in tallies.items():
        if names is None or name in names:
            total.caught += tally.caught
            total.total += tally.total
            total.true_predictions += tally.true_predictions
            total.predictions += tally.predictions
    return total
