"""The compliance service through real gRPC servers: a spy worker proves it only ever sees redacted text."""
from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from grpc_health.v1 import health_pb2

from libs.config import MedicalSettings
from medai.common.v1 import inference_pb2, models_pb2
from medai.compliance.v1 import compliance_pb2
from tests.fixtures.compliance import Compliance, running_compliance
from tests.support.spy_worker import CHAT_MODEL, EMB_MODEL, GEN_MODEL, SpyWorker, running_spy

PHI = ("John Smith", "617-555-0123", "john.smith@example.com", "536-22-8145")
NOTE = "John Smith (SSN 536-22-8145, phone 617-555-0123, john.smith@example.com) has a cough."
CALLER = inference_pb2.Caller(request_id="req-42", principal_id="key-7", role="clinician")


@pytest.fixture
async def spy() -> AsyncIterator[SpyWorker]:
    async with running_spy() as worker:
        yield worker


@pytest.fixture
async def compliance(spy, presidio_deidentifier) -> AsyncIterator[Compliance]:
    async with running_compliance([spy.address], presidio_deidentifier) as service:
        yield service


def predict_request(model_id: str, inputs, caller=CALLER, **fields) -> compliance_pb2.ProxyPredictRequest:
    value = struct_pb2.Value()
    if inputs is not None:
        json_format.ParseDict(inputs, value)
    request = inference_pb2.PredictRequest(model_id=model_id, **fields)
    if inputs is not None:
        request.inputs.CopyFrom(value)
    return compliance_pb2.ProxyPredictRequest(caller=caller, request=request)


def assert_no_phi(text: str) -> None:
    for value in PHI:
        assert value not in text


async def health_of(service: Compliance) -> int:
    request = health_pb2.HealthCheckRequest(service="medai.compliance.v1.Compliance")
    return (await service.health.Check(request)).status


async def until(condition, timeout=10.0):
    """Poll condition (a coroutine function) until it is true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


async def test_health_is_not_serving_until_the_analyzer_is_built(spy, presidio_deidentifier):
    gate = threading.Event()

    def build():
        gate.wait(timeout=10)
        return presidio_deidentifier

    async with running_compliance([spy.address], presidio_deidentifier, start=False) as service:
        starting = asyncio.create_task(service.core.start(build, service.reporter))
        try:
            async def not_serving() -> bool:
                with contextlib.suppress(grpc.aio.AioRpcError):  # NOT_FOUND until a status is set
                    return await health_of(service) == health_pb2.HealthCheckResponse.NOT_SERVING
                return False

            await until(not_serving)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await service.stub.Predict(predict_request(GEN_MODEL, NOTE))
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert spy.state.requests("Generate") == []
        finally:
            gate.set()
            await starting
        assert await health_of(service) == health_pb2.HealthCheckResponse.SERVING


async def test_predict_forwards_only_redacted_text_and_answers_in_the_public_format(compliance, spy):
    spy.state.reply = "Advise Dr. Alice Walker to call 212-555-0199."
    response = await compliance.stub.Predict(predict_request(GEN_MODEL, NOTE), timeout=30)

    (sent,) = spy.state.requests("Generate")
    assert_no_phi(sent.prompt)
    assert sent.prompt == ("[PERSON_1] (SSN [US_SSN_1], phone [PHONE_NUMBER_1], [EMAIL_ADDRESS_1]) has a cough.")
    assert (sent.request_id, sent.model_id) == ("req-42", GEN_MODEL)

    assert response.request_id == "req-42" and response.model_id == GEN_MODEL
    # Generated text is de-identified too (the same request's placeholders continue).
    assert response.outputs.string_value == "Advise Dr. [PERSON_2] to call [PHONE_NUMBER_2]."
    metadata = response.metadata
    assert (metadata.model_type, metadata.model_version, metadata.finish_reason) == ("text-generation", "spy-1", "stop")
    assert metadata.tokens_generated == 7 and metadata.prompt_tokens == len(sent.prompt.split())
    assert metadata.phi_entities_redacted == 6
    assert response.processing_time > 0 and response.timestamp.seconds > 0


async def test_list_inputs_make_one_call_each_with_shared_placeholders(compliance, spy):
    response = await compliance.stub.Predict(
        predict_request(GEN_MODEL, ["Call John Smith.", "Is John Smith at 617-555-0123?"]), timeout=30
    )
    prompts = sorted(request.prompt for request in spy.state.requests("Generate"))
    assert prompts == ["Call [PERSON_1].", "Is [PERSON_1] at [PHONE_NUMBER_1]?"]
    assert [v.string_value for v in response.outputs.list_value.values] == ["Rest and fluids."] * 2
    assert response.metadata.tokens_generated == 6


async def test_caller_deadline_reaches_the_worker(compliance, spy):
    await compliance.stub.Predict(predict_request(GEN_MODEL, "hello"), timeout=7)
    (call,) = [c for c in spy.state.calls if c.method == "Generate"]
    # gRPC encodes deadlines coarsely: allow a little rounding up.
    assert call.time_remaining is not None and 0 < call.time_remaining <= 7.1


async def test_predict_stream_sends_redacted_text_and_public_chunks(compliance, spy):
    spy.state.reply = "Take one tablet."
    chunks = [chunk async for chunk in compliance.stub.PredictStream(predict_request(GEN_MODEL, NOTE), timeout=30)]

    (sent,) = spy.state.requests("GenerateStream")
    assert_no_phi(sent.prompt)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert "".join(chunk.text for chunk in chunks) == "Take one tablet."
    assert all(not chunk.HasField("finish_reason") for chunk in chunks[:-1])
    last = chunks[-1]
    assert last.finish_reason == "stop" and last.usage.generated_tokens == 3
    assert last.usage.total_tokens == last.usage.prompt_tokens + 3
    assert {(c.request_id, c.model_id, c.model_version) for c in chunks} == {("req-42", GEN_MODEL, "spy-1")}


async def test_a_cancelled_stream_cancels_the_worker_stream(spy, presidio_deidentifier):
    # Without output redaction the first delta is forwarded at once (with it, a word is held until
    # the next one arrives: tests/unit/compliance/test_compliance_streaming.py).
    async with running_compliance([spy.address], presidio_deidentifier, redact_outputs=False) as compliance:
        await _cancel_after_first_chunk(compliance, spy)


async def _cancel_after_first_chunk(compliance, spy) -> None:
    spy.state.hold_stream = asyncio.Event()
    call = compliance.stub.PredictStream(predict_request(GEN_MODEL, NOTE), timeout=30)
    first = await call.read()
    assert first.index == 0
    call.cancel()

    async def worker_saw_cancel() -> bool:
        return spy.state.cancelled_streams == 1

    await until(worker_saw_cancel)


async def test_conversation_uses_the_caller_as_owner_and_returns_the_session(compliance, spy):
    request = predict_request(CHAT_MODEL, "I am John Smith.", session_id="",
                              parameters=inference_pb2.PredictParameters(system_prompt="Patient 617-555-0123."))
    response = await compliance.stub.Predict(request, timeout=30)
    (chat,) = spy.state.requests("Chat")
    assert (chat.owner, chat.message, chat.system_prompt) == ("key-7", "I am [PERSON_1].", "Patient [PHONE_NUMBER_1].")
    assert response.metadata.session_id == "s1" and response.outputs.string_value == "Rest and fluids."

    streamed = [c async for c in compliance.stub.PredictStream(
        predict_request(CHAT_MODEL, "Thanks, John Smith here.", session_id="s1"), timeout=30)]
    assert {c.session_id for c in streamed} == {"s1"}
    assert spy.state.requests("ChatStream")[0].message == "Thanks, [PERSON_1] here."

    deleted = await compliance.stub.DeleteSession(compliance_pb2.ProxyDeleteSessionRequest(
        caller=CALLER, request=inference_pb2.DeleteSessionRequest(model_id=CHAT_MODEL, session_id="s1")))
    assert deleted.deleted
    (delete,) = spy.state.requests("DeleteSession")
    assert (delete.session_id, delete.owner) == ("s1", "key-7")


async def test_deidentify_answers_redacted_text_and_entities(compliance):
    response = await compliance.stub.Deidentify(compliance_pb2.ProxyDeidentifyRequest(
        caller=CALLER, request=inference_pb2.DeidentifyRequest(text=NOTE)))
    assert_no_phi(response.redacted_text)
    assert {NOTE[e.start:e.end] for e in response.entities} == set(PHI)
    assert {e.entity_type for e in response.entities} == {"PERSON", "US_SSN", "PHONE_NUMBER", "EMAIL_ADDRESS"}


async def test_the_configured_operator_reaches_the_worker(spy, presidio_deidentifier):
    medical = MedicalSettings(redaction_operator="hash")
    async with running_compliance([spy.address], presidio_deidentifier, medical=medical) as service:
        await service.stub.Predict(predict_request(GEN_MODEL, NOTE))
        await service.stub.Predict(predict_request(GEN_MODEL, "Follow up with John Smith tomorrow."))
    first, second = (request.prompt for request in spy.state.requests("Generate"))
    assert_no_phi(first + second)
    pseudonyms = [re.findall(r"\[PERSON:[0-9a-f]+\]", prompt) for prompt in (first, second)]
    assert pseudonyms[0] and pseudonyms[0] == pseudonyms[1]  # the same person, the same pseudonym
    assert "[PERSON_1]" not in first


BAD_REQUESTS = {
    "missing inputs": (predict_request(GEN_MODEL, None), "inputs"),
    "empty list": (predict_request(GEN_MODEL, []), "inputs"),
    "not a string": (predict_request(GEN_MODEL, [NOTE, 5]), "inputs[1]"),
    "blank": (predict_request(GEN_MODEL, "   "), "inputs"),
    "too long": (predict_request(GEN_MODEL, NOTE * 500), "inputs"),
    "temperature": (predict_request(GEN_MODEL, NOTE, parameters=inference_pb2.PredictParameters(temperature=5)),
                    "parameters.temperature"),
    "max_new_tokens over the model's limit": (
        predict_request(GEN_MODEL, NOTE, parameters=inference_pb2.PredictParameters(max_new_tokens=65)),
        "parameters.max_new_tokens"),
    "conversation list": (predict_request(CHAT_MODEL, [NOTE]), "inputs"),
    "no model": (predict_request("", NOTE), "model_id"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
async def test_bad_input_is_invalid_argument_naming_the_field_without_the_text(compliance, spy, case):
    request, field = BAD_REQUESTS[case]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await compliance.stub.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(f"{field}: ")
    assert_no_phi(raised.value.details())
    assert spy.state.requests("Generate") == [] and spy.state.requests("Chat") == []


STREAM_REFUSALS = {
    "list input": (predict_request(GEN_MODEL, [NOTE]), "inputs"),
    "embedding model": (predict_request(EMB_MODEL, NOTE), "model_id"),
}


@pytest.mark.parametrize("case", STREAM_REFUSALS)
async def test_stream_refuses_lists_and_non_streaming_models(compliance, case):
    request, field = STREAM_REFUSALS[case]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in compliance.stub.PredictStream(request, timeout=30):
            pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(f"{field}: ")
    assert_no_phi(raised.value.details())


async def test_unknown_model_is_not_found(compliance):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await compliance.stub.Predict(predict_request("no-such-model", NOTE), timeout=30)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED])
async def test_worker_errors_come_back_with_the_same_code(compliance, spy, code):
    spy.state.fail_with = (code, "parameters.stop: refused by the worker")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await compliance.stub.Predict(predict_request(GEN_MODEL, NOTE), timeout=30)
    assert raised.value.code() == code
    assert raised.value.details() == "parameters.stop: refused by the worker"


async def test_worker_down_is_unavailable_for_calls_catalogue_and_health(compliance, spy):
    await spy.stop()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await compliance.stub.Predict(predict_request(GEN_MODEL, NOTE), timeout=30)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert raised.value.details() == "model worker unavailable"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in compliance.stub.PredictStream(predict_request(GEN_MODEL, NOTE), timeout=30):
            pass
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

    health = await compliance.catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id=GEN_MODEL))
    assert health.status == "UNAVAILABLE"
    await compliance.core.registry.refresh()
    listed = await compliance.catalog.ListModels(models_pb2.ListModelsRequest())
    assert {m.status for m in listed.models} == {"UNAVAILABLE"}


async def test_model_catalog_is_served_aggregated(compliance):
    listed = await compliance.catalog.ListModels(models_pb2.ListModelsRequest(model_type="text-generation"))
    assert [(m.model_id, m.status, m.limits.max_new_tokens) for m in listed.models] == [(GEN_MODEL, "SERVING", 64)]
    info = await compliance.catalog.GetModelInfo(models_pb2.GetModelInfoRequest(model_id=CHAT_MODEL))
    assert (info.model_type, info.device) == ("conversation", "cpu")
    health = await compliance.catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id=GEN_MODEL))
    assert (health.status, health.requests_running) == ("SERVING", 1)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await compliance.catalog.GetModelInfo(models_pb2.GetModelInfoRequest(model_id="nope"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_audit_rpcs_need_the_audit_permissions(compliance):
    for call in (compliance.stub.VerifyAudit(compliance_pb2.ProxyVerifyAuditRequest(caller=CALLER)),
                 compliance.stub.ListAuditRecords(compliance_pb2.ProxyListAuditRecordsRequest(caller=CALLER))):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
