"""Re-identification through a real compliance server (spy worker): the forms models write placeholders
in are restored for callers allowed to, in unary answers and in streams (which the spy sends word by
word, splitting "[PERSON 1]"), and only the values the caller sent."""
from __future__ import annotations

import pytest

from tests.fixtures.compliance import running_compliance
from tests.integration.test_compliance_audit import caller
from tests.integration.test_compliance_service import predict_request
from tests.support.spy_worker import GEN_MODEL, running_spy

PROMPT = "Patient Quentin Zabrowski, phone 617-555-0142, asks about his cough."
# A model's answer: brackets dropped, changed, spaced and lower-cased; a placeholder it invented.
REPLY = "PERSON_1, phone [PHONE_NUMBER_1]: rest. (person_1) and [PERSON 1] agree; PERSON_3 is new."
RESTORED = ("Quentin Zabrowski, phone 617-555-0142: rest. Quentin Zabrowski and Quentin Zabrowski agree; "
            "PERSON_3 is new.")


@pytest.fixture
async def compliance(presidio_deidentifier):
    async with running_spy() as spy:
        spy.state.reply = REPLY
        async with running_compliance([spy.address], presidio_deidentifier) as service:
            yield service


async def test_forms_of_the_callers_placeholders_are_restored_in_answers_and_streams(compliance):
    allowed = caller("phi:reidentify")
    answer = await compliance.stub.Predict(predict_request(GEN_MODEL, PROMPT, caller=allowed), timeout=30)
    streamed = [c.text async for c in compliance.stub.PredictStream(
        predict_request(GEN_MODEL, PROMPT, caller=allowed), timeout=30)]
    assert answer.outputs.string_value == RESTORED
    assert "".join(streamed) == RESTORED


async def test_without_the_permission_nothing_is_restored(compliance):
    answer = await compliance.stub.Predict(predict_request(GEN_MODEL, PROMPT, caller=caller()), timeout=30)
    assert "Zabrowski" not in answer.outputs.string_value and "617-555-0142" not in answer.outputs.string_value
