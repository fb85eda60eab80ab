"""The OpenAI-compatible routes with the official `openai` client, through Envoy -> gateway -> compliance (real
Presidio) -> a spy worker that records what it is sent: PHI in any chat message reaches the worker redacted
(one value, one placeholder across the messages), answers carry no PHI for a key that may not see it, a
plain completion skips the chat template, and errors come back as the client's own exception classes."""
from __future__ import annotations

import base64
import struct

import httpx
import openai
import pytest

from tests.support.edge_stack import Stack, edge_stack
from tests.support.spy_worker import CHAT_MODEL, EMB_MODEL, GEN_MODEL

NAME, PHONE = "Quentin Zabrowski", "617-555-0142"
SYSTEM = f"You assist the care team of {NAME}."
QUESTION = f"{NAME} (phone {PHONE}) has a cough since Monday. What should he do?"


@pytest.fixture
async def stack(tmp_path, presidio_deidentifier):
    async with edge_stack(tmp_path, presidio_deidentifier) as running:
        running.spy.state.reply = f"Tell {NAME} to rest and call {PHONE} if it gets worse."
        yield running


def client(stack: Stack, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0)


def chat_messages() -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "Any fever?"}, {"role": "user", "content": "No fever."}]


async def test_every_message_reaches_the_worker_redacted_with_one_placeholder_per_value(stack):
    answer = await client(stack, await stack.new_key("service")).chat.completions.create(
        model=GEN_MODEL, messages=chat_messages(), max_tokens=16, temperature=0)
    (sent,) = stack.spy.state.requests("Generate")
    roles = [turn.role for turn in sent.messages]
    contents = [turn.content for turn in sent.messages]
    assert roles == ["system", "user", "assistant", "user"] and not sent.prompt
    assert all(NAME not in text and PHONE not in text and "Zabrowski" not in text for text in contents)
    assert "[PERSON_1]" in contents[0] and "[PERSON_1]" in contents[1]  # the same person, the same placeholder
    assert "[PHONE_NUMBER_1]" in contents[1]
    assert answer.object == "chat.completion" and answer.choices[0].message.role == "assistant"
    reply = answer.choices[0].message.content
    assert NAME not in reply and PHONE not in reply  # a service key may not see PHI: the answer is redacted too
    assert answer.usage.completion_tokens > 0 and answer.choices[0].finish_reason == "stop"


async def test_a_streamed_answer_carries_no_phi_and_ends_with_usage(stack):
    stream = await client(stack, await stack.new_key("service")).chat.completions.create(
        model=CHAT_MODEL, messages=chat_messages(), stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    text = "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)
    assert text and "Zabrowski" not in text and PHONE not in text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    (sent,) = stack.spy.state.requests("GenerateStream")  # a chat sent whole: stateless, even on a chat model
    assert all("Zabrowski" not in turn.content for turn in sent.messages)
    assert not stack.spy.state.requests("ChatStream")


async def test_a_clinician_gets_back_only_the_values_it_sent(stack):
    answer = await client(stack, await stack.new_key("clinician")).chat.completions.create(
        model=GEN_MODEL, messages=chat_messages(), max_tokens=16)
    assert NAME in answer.choices[0].message.content  # restored: the caller sent it


async def test_a_completion_is_a_plain_prompt_without_the_chat_template(stack):
    answer = await client(stack, await stack.new_key()).completions.create(
        model=GEN_MODEL, prompt=[f"Note for {NAME}:", "Plan:"], max_tokens=8)
    sent = stack.spy.state.requests("Generate")
    assert [request.raw_prompt for request in sent] == [True, True]
    assert all("Zabrowski" not in request.prompt for request in sent)
    assert [choice.index for choice in answer.choices] == [0, 1] and answer.object == "text_completion"


async def test_embeddings_as_floats_and_as_base64_are_the_same_vectors(stack):
    api = client(stack, await stack.new_key())
    floats = await api.embeddings.create(model=EMB_MODEL, input=["chest pain", QUESTION], encoding_format="float")
    body = {"model": EMB_MODEL, "input": ["chest pain", QUESTION], "encoding_format": "base64"}
    async with httpx.AsyncClient() as http:
        raw = await http.post(f"{stack.base_url}/v1/embeddings", json=body,
                              headers={"authorization": f"Bearer {await stack.new_key()}"})
    decoded = [list(struct.unpack(f"<{len(base64.b64decode(item['embedding'])) // 4}f",
                                  base64.b64decode(item["embedding"]))) for item in raw.json()["data"]]
    assert decoded == [item.embedding for item in floats.data]
    assert all("Zabrowski" not in request.inputs[1] for request in stack.spy.state.requests("Embed"))


async def test_errors_are_the_clients_own_exception_classes(stack):
    admin, auditor, limited = await stack.new_key(), await stack.new_key("auditor"), await stack.new_key(rpm=1)
    message = [{"role": "user", "content": QUESTION}]
    cases = [
        (openai.AuthenticationError, client(stack, "msk_0123456789ab_nosuchsecret"), GEN_MODEL, message, None),
        (openai.PermissionDeniedError, client(stack, auditor), GEN_MODEL, message, None),
        (openai.NotFoundError, client(stack, admin), "no-such-model", message, "model"),
        (openai.BadRequestError, client(stack, admin), GEN_MODEL, [{"role": "doctor", "content": "x"}],
         "messages[0].role"),
        (openai.BadRequestError, client(stack, admin), EMB_MODEL, message, "messages"),
    ]
    for error_class, api, model, messages, param in cases:
        with pytest.raises(error_class) as raised:
            await api.chat.completions.create(model=model, messages=messages, max_tokens=4)
        body = raised.value.body
        assert set(body) >= {"message", "type", "param", "code"} and body["param"] == param
        assert "Zabrowski" not in str(body) and PHONE not in str(body)
    await client(stack, limited).models.list()
    with pytest.raises(openai.RateLimitError) as limited_out:
        await client(stack, limited).models.list()
    assert int(limited_out.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.BadRequestError) as unsupported:
        await client(stack, admin).chat.completions.create(model=GEN_MODEL, messages=message, n=2)
    assert unsupported.value.body["param"] == "n"


async def test_a_stream_cut_short_ends_with_an_error_event_the_client_raises(stack):
    stack.spy.state.fail_mid_stream = True
    stream = await client(stack, await stack.new_key()).chat.completions.create(
        model=GEN_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    received = []
    with pytest.raises(openai.APIError) as raised:
        async for chunk in stream:
            received.append(chunk)
    assert raised.value.body["type"] == "server_error" and raised.value.body["code"] == "service_unavailable"
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices)  # what came before the failure
    assert all(c.choices[0].finish_reason is None for c in received if c.choices)
