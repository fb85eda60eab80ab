"""Re-identification: the caller's own values put back in place of their placeholders in a model's answer.

Models do not always copy a placeholder as written: they drop or change its brackets ("PERSON_1",
"(PERSON_1)", "{PERSON_1}", "<PERSON_1>"), change its case ("Person_1", "[person_1]") or its separators
("[PERSON 1]", "PERSON-1", "PHONE NUMBER_1"). Every such form of a placeholder of this request's (or
session's) map is restored; anything else stays: a number the map does not hold (a model's invention),
a type alone ("PERSON"), a number alone, a lower-case "person 1" (ordinary words), and short types
("ID") without a joiner or brackets.

`StreamRestorer` does the same over a token stream, holding back a tail that may be the start of a
placeholder whose rest has not arrived.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping

import regex

_OPEN = r"(?P<open>(?:\\?[\[({<]){1,2}[ \t]?)"
_CLOSE = r"(?P<close>[ \t]?(?:\\?[\])}>]){1,2})"
_NUMBER = r"(?P<number>0*[1-9]\d{0,4})(?![\d\p{L}])"
_BEFORE = r"(?<![\p{L}\d])"  # a prefix glued on with "_" may stand before ("Patient_PERSON_1")
# Types this short ("ID") are restored in a spaced form only inside brackets.
MIN_SPACED_TYPE_CHARS = 4


def _parts(placeholder: str) -> tuple[str, int] | None:
    """("PHONE_NUMBER", 1) for "[PHONE_NUMBER_1]"; None for what is no numbered placeholder."""
    entity_type, _, number = placeholder.strip("[]").rpartition("_")
    return (entity_type, int(number)) if entity_type and number.isdigit() else None


def _squashed(entity_type: str) -> str:
    return "".join(c for c in entity_type.upper() if c.isalnum())


def _type_pattern(entity_type: str, separator: str) -> str:
    return separator.join(regex.escape(word) for word in entity_type.split("_"))


@functools.lru_cache(maxsize=256)
def _pattern(entity_types: tuple[str, ...]) -> regex.Pattern:
    """Every written form of a placeholder of these types (see the module's docstring)."""
    joined = "|".join(_type_pattern(t, r"[ _-]?") for t in entity_types)
    spaced = [t for t in entity_types if len(_squashed(t)) >= MIN_SPACED_TYPE_CHARS]
    bare_spaced = "|".join(f"{_type_pattern(t, ' ')}|{_type_pattern(t.title(), ' ')}" for t in spaced)
    forms = [
        # Joined to its number ("PERSON_1", "person-1", "Person1"), with or without brackets, any case.
        rf"{_OPEN}?{_BEFORE}(?i:(?P<type>{joined}))(?:[_-]|[ \t]?\#)?{_NUMBER}{_CLOSE}?",
        # Spaced ("[PERSON 1]", "(phone number 1)") inside brackets, any case.
        rf"{_OPEN}(?i:(?P<type>{joined}))[ \t]+\#?{_NUMBER}{_CLOSE}",
    ]
    if bare_spaced:  # spaced without brackets only in capitals or title case ("PERSON 1", "Person 1")
        forms.append(rf"{_BEFORE}(?P<type>{bare_spaced})[ \t]+\#?{_NUMBER}{_CLOSE}?")
    return regex.compile("|".join(f"(?:{form})" for form in forms), regex.VERSION1)


class Restorer:
    """The written forms of one map's placeholders, and the values they stand for."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._values: dict[tuple[str, int], str] = {}
        for placeholder, value in mapping.items():
            parts = _parts(placeholder)
            if parts is not None:
                self._values[(_squashed(parts[0]), parts[1])] = value
        types = sorted({_parts(p)[0] for p in mapping if _parts(p) is not None}, key=len, reverse=True)
        self.pattern = _pattern(tuple(types)) if types else None
        # The longest form: brackets (4), spaces (4), "#", a number of up to 6 digits around the type.
        self.longest_form = max(map(len, types), default=0) + 16

    def unfinished(self, text: str) -> int:
        """Where a form that may still grow starts in text's tail (len(text) when none does): a match
        that reaches the end, complete ("PERSON_1" before "0") or not ("[PERS")."""
        if self.pattern is not None:
            for start in range(max(0, len(text) - self.longest_form), len(text)):
                match = self.pattern.match(text, start, partial=True)
                if match is not None and (match.partial or match.end() == len(text)):
                    return start
        return len(text)

    def value(self, match: regex.Match) -> str | None:
        """The value a found form stands for, or None (a placeholder the map does not hold)."""
        return self._values.get((_squashed(match.group("type")), int(match.group("number"))))

    def _replacement(self, match: regex.Match) -> str:
        value = self.value(match)
        return match.group(0) if value is None else value

    def restore(self, text: str) -> str:
        return text if self.pattern is None else self.pattern.sub(self._replacement, text)


def reidentify(text: str, mapping: Mapping[str, str]) -> str:
    """text with each placeholder of `mapping` (placeholder -> value) restored, in any form a model writes it."""
    return Restorer(mapping).restore(text)


class StreamRestorer:
    """Re-identification of a stream: `feed` each piece of text in order, `finish` at the end. A tail that
    may still grow into a placeholder form (or a longer one: "PERSON_1" before "0]") is held back."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._restorer = Restorer(mapping)
        self._held = ""

    def feed(self, text: str) -> str:
        if self._restorer.pattern is None:
            return text
        text = self._held + text
        cut = self._restorer.unfinished(text)
        self._held = text[cut:]
        return self._restorer.restore(text[:cut])

    def finish(self) -> str:
        """What is still held, restored."""
        held, self._held = self._held, ""
        return self._restorer.restore(held)
