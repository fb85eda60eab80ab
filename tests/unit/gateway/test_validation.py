"""Every check the gateway makes before any work: 400 naming the field, never echoing the text, no call made."""
from __future__ import annotations

import pytest

from libs.errors import InvalidInput
from libs.validation import GenerationParams
from services.gateway.core.model import PredictCall
from services.gateway.core.validation import min_tokens
from tests.unit.gateway.conftest import build_gateway, meta

SECRET = "Zebulon"  # stands for PHI in the request: no message may contain it


def call(model_id: str = "gen-1", inputs: object = SECRET, **fields) -> PredictCall:
    params = fields.pop("params", {})
    return PredictCall(model_id=model_id, inputs=inputs, params=GenerationParams(**params), **fields)


def words(count: int) -> str:
    return " ".join(["x"] * count)


CASES = [
    # request size (gRPC callers; Envoy refuses large JSON bodies itself)
    (call(request_bytes=2049), "request"),
    # inputs: presence, type, list length, characters
    (call(inputs=None), "inputs"),
    (call(inputs=7), "inputs"),
    (call(inputs={"text": SECRET}), "inputs"),
    (call(inputs=[]), "inputs"),
    (call(inputs=""), "inputs"),
    (call(inputs="   "), "inputs"),
    (call(inputs=[SECRET, 3]), "inputs[1]"),
    (call(inputs=[SECRET, " "]), "inputs[1]"),
    (call(inputs=[SECRET] * 5), "inputs"),
    (call(inputs=SECRET * 20), "inputs"),
    (call(inputs=[SECRET, SECRET * 20]), "inputs[1]"),
    # per model: list length and input tokens (lower bound: one per word)
    (call("emb-1", inputs=[SECRET] * 4), "inputs"),
    (call(inputs=words(21)), "inputs"),
    (call(inputs=[SECRET, words(21)]), "inputs[1]"),
    (call("chat-1", inputs=words(21)), "inputs"),
    (call("emb-1", inputs=[words(11)], truncate=False), "inputs[0]"),
    # parameter ranges (general, and the model's max_new_tokens)
    (call(params={"max_new_tokens": 0}), "parameters.max_new_tokens"),
    (call(params={"max_new_tokens": 65}), "parameters.max_new_tokens"),
    (call(params={"temperature": -0.1}), "parameters.temperature"),
    (call(params={"temperature": 2.5}), "parameters.temperature"),
    (call(params={"top_p": 0.0}), "parameters.top_p"),
    (call(params={"top_p": 1.5}), "parameters.top_p"),
    (call(params={"top_k": -1}), "parameters.top_k"),
    (call(params={"repetition_penalty": 0.0}), "parameters.repetition_penalty"),
    (call(params={"repetition_penalty": float("inf")}), "parameters.repetition_penalty"),
    (call(params={"stop": ("a", "b", "c", "d", "e")}), "parameters.stop"),
    (call(params={"stop": ("",)}), "parameters.stop"),
    (call(params={"stop": (SECRET * 10,)}), "parameters.stop"),
    (call("emb-1", params={"temperature": 9.0}), "parameters.temperature"),
    (call("chat-1", system_prompt=SECRET * 20), "parameters.system_prompt"),
    # identifiers and labels (they reach logs and the audit trail)
    (call("chat-1", session_id=f"{SECRET} 1"), "session_id"),
    (call("chat-1", session_id="s" * 129), "session_id"),
    (call(user_id=SECRET * 40), "user_id"),
    (call(purpose="P" * 65), "purpose"),
    (call(purpose=f"treat {SECRET}"), "purpose"),
    (call(""), "model_id"),
]


@pytest.mark.parametrize(("predict_call", "field"), CASES)
async def test_invalid_predict_names_the_field_and_does_no_work(key_store, compliance, predict_call, field):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    with pytest.raises(InvalidInput) as raised:
        await gateway.predict(meta(key), predict_call)
    assert raised.value.message.startswith(f"{field}:")
    assert SECRET not in raised.value.message
    assert compliance.calls == []


@pytest.mark.parametrize(("predict_call", "field"), CASES[:12])
async def test_streams_are_checked_the_same_way(key_store, compliance, predict_call, field):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    with pytest.raises(InvalidInput, match=rf"^{field.replace('[', '.').replace(']', '.')}:"):
        async for _ in gateway.predict_stream(meta(key), predict_call):
            pass
    assert compliance.calls == []


async def test_valid_edge_cases_pass(key_store, compliance):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    for predict_call in (
        call(inputs=words(20)),  # exactly the model's token limit
        call("emb-1", inputs=[words(11)]),  # over the token limit, but the worker truncates
        call("emb-1", inputs=[SECRET] * 3),
        call(params={"max_new_tokens": 64, "temperature": 2.0, "top_p": 1.0, "top_k": 0}),
        call("chat-1", session_id="a1b2-c3_d4.e5", user_id="u" * 256, purpose="TREAT:hl7.v3-x"),
        call(request_bytes=2048),
    ):
        await gateway.predict(meta(key), predict_call)
    assert len(compliance.calls) == 6


@pytest.mark.parametrize(("text", "message"), [("", "text: must not be empty"), (SECRET * 20, "text: longer than")])
async def test_deidentify_text_is_checked(key_store, compliance, text, message):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    with pytest.raises(InvalidInput, match=f"^{message}"):
        await gateway.deidentify(meta(key), text)
    assert compliance.calls == []


@pytest.mark.parametrize(("text", "expected"), [("one", 1), ("two  words\n", 2), ("[PERSON_1] said: hi", 3), ("", 0)])
def test_min_tokens_counts_words(text, expected):
    assert min_tokens(text) == expected
