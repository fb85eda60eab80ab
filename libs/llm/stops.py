"""Stop strings over a text stream: emit text as soon as it cannot be the start of a stop string."""
from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Feed text deltas; get back what is safe to emit, and whether a stop string was reached.

    Text that could be the beginning of a stop string is held back until the next delta decides;
    the stop string itself is never emitted.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._held = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        text = self._held + delta
        if not self._stops:
            self._held = ""
            return text, False
        found = [position for stop in self._stops if (position := text.find(stop)) >= 0]
        if found:
            self._held = ""
            return text[:min(found)], True
        hold = self._held_suffix_length(text)
        self._held = text[len(text) - hold:] if hold else ""
        return text[:len(text) - hold], False

    def flush(self) -> str:
        """What is still held when the stream ends without a stop string."""
        text, self._held = self._held, ""
        return text

    def _held_suffix_length(self, text: str) -> int:
        """Length of the longest suffix of text that is a proper prefix of some stop string."""
        longest = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[len(text) - length:]):
                    longest = length
                    break
        return longest
