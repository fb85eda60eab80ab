"""Stop strings over a stream of text deltas."""
from __future__ import annotations

import pytest

from libs.llm.stops import StopMatcher


def run(stops: list[str], deltas: list[str]) -> tuple[list[str], bool]:
    matcher = StopMatcher(stops)
    emitted = []
    for delta in deltas:
        text, stopped = matcher.feed(delta)
        emitted.append(text)
        if stopped:
            return emitted, True
    emitted.append(matcher.flush())
    return emitted, False


def test_without_stops_everything_passes_at_once():
    assert run([], ["a", "b"]) == (["a", "b", ""], False)


def test_stop_inside_one_delta_cuts_before_it():
    assert run(["END"], ["abcENDxyz"]) == (["abc"], True)


def test_stop_split_across_deltas_is_held_back_then_dropped():
    emitted, stopped = run(["END"], ["abcE", "N", "Dxyz"])
    assert stopped and emitted == ["abc", "", ""]


def test_held_text_is_released_when_it_turns_out_not_to_be_a_stop():
    emitted, stopped = run(["END"], ["abcE", "Nx", "yz"])
    assert not stopped
    assert emitted == ["abc", "ENx", "yz", ""]


def test_held_text_is_flushed_at_the_end():
    assert run(["END"], ["abcEN"]) == (["abc", "EN"], False)


def test_earliest_of_several_stops_wins():
    assert run(["xyz", "b"], ["axyzb"]) == (["a"], True)


@pytest.mark.parametrize("split", range(1, 9))
def test_any_split_gives_the_same_text(split):
    text = "hello ## world"
    emitted, stopped = run(["##"], [text[:split], text[split:]])
    assert stopped and "".join(emitted) == "hello "
