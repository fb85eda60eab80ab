"""Re-identification of the forms models write placeholders in, for this map's placeholders only; and the
same over a stream split at every point."""
from __future__ import annotations

import pytest

from services.compliance.core.reidentification import StreamRestorer, reidentify

MAP = {"[PERSON_1]": "Quentin Zabrowski", "[PHONE_NUMBER_1]": "617-555-0142", "[PERSON_2]": "Ann Lee",
       "[ID_1]": "XK-4471"}

RESTORED = [
    # (what a model wrote, what the caller gets back)
    ("PERSON_1, phone [PHONE_NUMBER_1] ...", "Quentin Zabrowski, phone 617-555-0142 ..."),
    ("[PERSON_1] called", "Quentin Zabrowski called"),
    ("[person_1] called", "Quentin Zabrowski called"),
    ("(PERSON_1) called", "Quentin Zabrowski called"),
    ("{PERSON_1} called", "Quentin Zabrowski called"),
    ("<PERSON_1> called", "Quentin Zabrowski called"),
    ("[[PERSON_1]] called", "Quentin Zabrowski called"),
    ("[ PERSON_1 ] called", "Quentin Zabrowski called"),
    ("\\[PERSON_1\\] called", "Quentin Zabrowski called"),
    ("[PERSON 1] called", "Quentin Zabrowski called"),
    ("PERSON-1 called", "Quentin Zabrowski called"),
    ("Person_1 called", "Quentin Zabrowski called"),
    ("Person 1 called", "Quentin Zabrowski called"),
    ("PERSON 1 called", "Quentin Zabrowski called"),
    ("PERSON1 called", "Quentin Zabrowski called"),
    ("PERSON_1's phone", "Quentin Zabrowski's phone"),
    ("**PERSON_2** and PERSON_1.", "**Ann Lee** and Quentin Zabrowski."),
    ("PHONE NUMBER 1", "617-555-0142"),
    ("phone_number_1", "617-555-0142"),
    ("PhoneNumber1", "617-555-0142"),
    ("(phone number 1)", "617-555-0142"),
    ("ID_1 and [ID 1]", "XK-4471 and XK-4471"),
    ("[Patient_Phone_Number_1]", "[Patient_617-555-0142"),  # a prefix glued on: the placeholder is restored
]


@pytest.mark.parametrize("written,expected", RESTORED)
def test_forms_models_write_are_restored(written, expected):
    assert reidentify(written, MAP) == expected


LEFT_ALONE = [
    "PERSON_3 called",  # a number the map does not hold: a placeholder the model invented
    "PERSON_10 called",  # a longer number
    "PERSON called",  # a type alone
    "number 1 and item 2",  # a number alone
    "person 1 and person 2 in the study",  # lower-case words
    "phone number 1 is busy",
    "ID 1",  # a short type spaced without brackets
    "XPERSON_1 and PERSON_1st",  # inside other words
    "EMAIL_ADDRESS_1",  # a type the map does not hold
    "[PERSON:3fa85f6457174562]",  # a keyed pseudonym
]


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_look_alikes_and_placeholders_not_in_the_map_stay(text):
    assert reidentify(text, MAP) == text


def test_only_values_the_caller_sent_are_restored():
    assert reidentify("[PERSON_1] and [PERSON_2]", {"[PERSON_1]": "Ann Lee"}) == "Ann Lee and [PERSON_2]"
    assert reidentify("PERSON_1", {}) == "PERSON_1"


ANSWER = "Call PERSON_1 at [PHONE_NUMBER_1]; (Person 2) agrees, PERSON_3 does not."
EXPECTED = "Call Quentin Zabrowski at 617-555-0142; Ann Lee agrees, PERSON_3 does not."


@pytest.mark.parametrize("cut", range(1, len(ANSWER)))
def test_a_stream_split_at_any_point_is_restored(cut):
    stream = StreamRestorer(MAP)
    released = [stream.feed(ANSWER[:cut]), stream.feed(ANSWER[cut:]), stream.finish()]
    assert "".join(released) == EXPECTED


def test_a_stream_of_single_characters_is_restored_and_released_as_it_goes():
    stream = StreamRestorer(MAP)
    released = [stream.feed(c) for c in ANSWER]
    assert "".join(released) + stream.finish() == EXPECTED
    assert released[0] == "C"  # text that cannot start a placeholder is not held
    assert "".join(released[:20]) == "Call Quentin Zabrowski at "  # "[PH" is held


def test_a_stream_holds_a_placeholder_that_may_grow_until_it_is_complete():
    stream = StreamRestorer({"[PERSON_1]": "Ann Lee", "[PERSON_12]": "Bo Chen"})
    assert stream.feed("See PERSON_1") == "See "
    assert stream.feed("2 today") == "Bo Chen today"
    assert stream.finish() == ""
