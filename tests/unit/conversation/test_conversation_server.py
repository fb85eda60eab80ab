"""The conversation worker through a real gRPC server: history, owners, truncation, deletion, streaming."""
from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2
from transformers import AutoTokenizer

from libs.config import AppSettings, ConversationSettings
from libs.llm.chat import ChatTemplate
from libs.stores.sessions import Turn
from medai.common.v1 import models_pb2
from medai.conversation.v1 import conversation_pb2
from services.conversation.core.context import conversation
from tests.fixtures.llm_workers import (
    MODEL_ID,
    PHI,
    SYSTEM_PROMPT,
    chat_request,
    eventually,
    health_status,
    serve_conversation,
    wait_serving,
    worker_fields,
)
from tests.support.ports import free_ports
from tests.support.redis_server import REDIS_URL, isolated_redis
from tests.unit.conversation.conftest import tiny_worker

LONG_MESSAGE = "hello world " * 300  # about 1500 tokens of the tiny model's 4096


@pytest.fixture(scope="module")
def chat_template(tiny_lm_dir) -> ChatTemplate:
    return ChatTemplate(AutoTokenizer.from_pretrained(tiny_lm_dir))


def prompt_tokens(chat: ChatTemplate, system: str | None, turns: list[tuple[str, str]], message: str) -> int:
    return len(chat.encode(conversation(system, [Turn(*turn) for turn in turns], message)))


async def test_history_is_kept_across_turns(worker, chat_template):
    first = await worker.chat("The patient reports")
    assert len(first.session_id) == 32 and first.turns == 1
    assert first.reply.finish_reason == "length" and first.reply.usage.generated_tokens == 8
    assert first.reply.usage.prompt_tokens == prompt_tokens(chat_template, SYSTEM_PROMPT, [], "The patient reports")
    second = await worker.chat("Follow up in two weeks", session_id=first.session_id)
    assert (second.session_id, second.turns) == (first.session_id, 2)
    history = [("The patient reports", first.reply.text)]
    assert second.reply.usage.prompt_tokens == prompt_tokens(chat_template, SYSTEM_PROMPT, history,
                                                             "Follow up in two weeks")
    fresh = await worker.chat("Follow up in two weeks")
    assert fresh.session_id != first.session_id and fresh.turns == 1


async def test_a_system_prompt_is_kept_for_the_session(worker, chat_template):
    first = await worker.chat("hello", system_prompt="Answer in one word.")
    assert first.reply.usage.prompt_tokens == prompt_tokens(chat_template, "Answer in one word.", [], "hello")
    second = await worker.chat("again", session_id=first.session_id)
    assert second.reply.usage.prompt_tokens == prompt_tokens(chat_template, "Answer in one word.",
                                                             [("hello", first.reply.text)], "again")
    no_system = await worker.chat("hello", system_prompt="")
    assert no_system.reply.usage.prompt_tokens == prompt_tokens(chat_template, None, [], "hello")


async def test_sessions_are_isolated_between_owners(worker):
    mine = await worker.chat("hello", owner="alice")
    theirs = await worker.chat("hello", owner="mallory", session_id=mine.session_id)
    assert (theirs.session_id, theirs.turns) == (mine.session_id, 1)  # mallory's own, empty session of that name
    deleted = await worker.conversation.DeleteSession(
        conversation_pb2.DeleteSessionRequest(session_id=mine.session_id, owner="eve"))
    assert not deleted.deleted
    assert (await worker.chat("still mine", owner="alice", session_id=mine.session_id)).turns == 2
    assert (await worker.chat("and mine", owner="mallory", session_id=mine.session_id)).turns == 2


async def test_a_client_named_session_starts_and_continues(worker):
    first = await worker.chat("hello", owner="alice", session_id="ward5-bed12.visit_1")
    second = await worker.chat("and then", owner="alice", session_id="ward5-bed12.visit_1")
    assert (first.session_id, first.turns, second.turns) == ("ward5-bed12.visit_1", 1, 2)


@pytest.mark.parametrize("name", ["a" * 129, "has space", "slash/x", "é"])
async def test_a_malformed_session_name_is_invalid_argument(worker, name):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await worker.chat("hello", owner="alice", session_id=name)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("session_id:")


async def test_oldest_turns_are_dropped_to_fit_the_context_window(worker, chat_template):
    history: list[tuple[str, str]] = []
    session_id = ""
    for _ in range(2):
        reply = await worker.chat(LONG_MESSAGE, session_id=session_id)
        session_id = reply.session_id
        assert reply.reply.usage.prompt_tokens == prompt_tokens(chat_template, SYSTEM_PROMPT, history, LONG_MESSAGE)
        history.append((LONG_MESSAGE, reply.reply.text))
    third = await worker.chat(LONG_MESSAGE, session_id=session_id)
    assert prompt_tokens(chat_template, SYSTEM_PROMPT, history, LONG_MESSAGE) > 4095  # all of it cannot fit
    assert third.reply.usage.prompt_tokens == prompt_tokens(chat_template, SYSTEM_PROMPT, history[1:], LONG_MESSAGE)
    assert third.turns == 3  # the session still holds every turn; only the prompt left the oldest out


async def test_a_message_that_cannot_fit_is_invalid_argument(worker):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await worker.chat(f"{PHI} " + "hello world " * 1000)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("inputs:") and PHI not in caught.value.details()


async def test_turn_limit_keeps_the_newest_turns(tiny_lm_dir, tmp_path, chat_template):
    async with tiny_worker(tiny_lm_dir, tmp_path, max_turns=2) as worker:
        replies = []
        for message in ("one", "two", "three"):
            replies.append(await worker.chat(message, session_id=replies[-1].session_id if replies else ""))
        assert [reply.turns for reply in replies] == [1, 2, 2]
        fourth = await worker.chat("four", session_id=replies[0].session_id)
    kept = [("two", replies[1].reply.text), ("three", replies[2].reply.text)]
    assert fourth.reply.usage.prompt_tokens == prompt_tokens(chat_template, SYSTEM_PROMPT, kept, "four")


async def test_delete_session(worker):
    session_id = (await worker.chat("hello")).session_id
    request = conversation_pb2.DeleteSessionRequest(session_id=session_id, owner="alice")
    assert (await worker.conversation.DeleteSession(request)).deleted
    assert not (await worker.conversation.DeleteSession(request)).deleted
    assert (await worker.chat("hello", session_id=session_id)).turns == 1  # the name starts afresh


async def test_stream_matches_unary_and_stores_the_turn(worker):
    chunks = [chunk async for chunk in worker.conversation.ChatStream(chat_request("Blood pressure"))]
    session_id = chunks[0].session_id
    assert len(session_id) == 32 and all(chunk.session_id == session_id for chunk in chunks)
    assert chunks[-1].chunk.finish_reason == "length" and chunks[-1].chunk.usage.generated_tokens == 8
    unary = await worker.chat("Blood pressure")
    assert "".join(chunk.chunk.text for chunk in chunks) == unary.reply.text
    assert (await worker.chat("next", session_id=session_id)).turns == 2


async def test_a_cancelled_stream_stores_no_turn(worker):
    first = await worker.chat("hello")
    stream = worker.conversation.ChatStream(chat_request("more", session_id=first.session_id, max_new_tokens=4000))
    await stream.read()
    stream.cancel()

    async def reply_over() -> bool:
        health = await worker.catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id=MODEL_ID))
        return health.requests_running == 0

    await eventually(reply_over, timeout=5.0)
    assert (await worker.chat("again", session_id=first.session_id)).turns == 2


@pytest.mark.parametrize(("fields", "field"), [
    ({"owner": ""}, "owner"),
    ({"message": ""}, "inputs"),
    ({"max_new_tokens": 0}, "parameters.max_new_tokens"),
])
async def test_bad_requests_are_invalid_argument(worker, fields, field):
    request = chat_request(**{"message": PHI, **fields})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await worker.conversation.Chat(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"{field}:") and PHI not in caught.value.details()


async def test_unknown_model_is_not_found(worker):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await worker.conversation.Chat(chat_request("hello", model_id="other"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_catalog_and_health(tiny_lm_dir, tmp_path):
    async with tiny_worker(tiny_lm_dir, tmp_path, start=False) as worker:
        assert await health_status(worker.health) == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await worker.chat("hello")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        await worker.deps.core.start()
        await wait_serving(worker.health)
        listed = await worker.catalog.ListModels(models_pb2.ListModelsRequest(model_type="conversation"))
        assert [(m.model_id, m.model_type, m.status) for m in listed.models] == \
            [("tiny-lm", "conversation", "SERVING")]
        health = await worker.catalog.GetModelHealth(models_pb2.GetModelHealthRequest(model_id="tiny-lm"))
        assert (health.status, health.requests_running, health.requests_waiting) == ("SERVING", 0, 0)


def redis_worker(model_dir, cache_dir, redis_url: str, prefix: str):
    settings = ConversationSettings(**{**worker_fields(model_dir, cache_dir),
                                       "app": AppSettings(environment="test", redis_url=redis_url)},
                                    system_prompt=SYSTEM_PROMPT, session_key_prefix=prefix)
    return serve_conversation(settings)


@pytest.mark.redis
async def test_redis_sessions_survive_a_worker_restart_and_stay_owner_scoped(tiny_lm_dir, tmp_path, chat_template):
    async with isolated_redis() as (client, prefix):
        async with redis_worker(tiny_lm_dir, tmp_path, REDIS_URL, prefix) as worker:
            first = await worker.chat("The patient reports")
        assert [key async for key in client.scan_iter(match=f"{prefix}*")]  # stored in Redis, under the prefix
        async with redis_worker(tiny_lm_dir, tmp_path, REDIS_URL, prefix) as restarted:
            theirs = await restarted.chat("hello", owner="mallory", session_id=first.session_id)
            assert theirs.turns == 1  # the same name is mallory's own session, without alice's history
            second = await restarted.chat("Follow up in two weeks", session_id=first.session_id)
            deleted = [(await restarted.conversation.DeleteSession(
                conversation_pb2.DeleteSessionRequest(session_id=first.session_id, owner=owner))).deleted
                for owner in ("alice", "mallory")]
        assert second.turns == 2 and deleted == [True, True]
        history = [("The patient reports", first.reply.text)]
        assert second.reply.usage.prompt_tokens == prompt_tokens(chat_template, SYSTEM_PROMPT, history,
                                                                 "Follow up in two weeks")
        assert not [key async for key in client.scan_iter(match=f"{prefix}*")]


async def test_redis_down_is_unavailable_not_internal(tiny_lm_dir, tmp_path):
    port = free_ports(1)[0]  # nothing listens there
    async with redis_worker(tiny_lm_dir, tmp_path, f"redis://127.0.0.1:{port}/0", "medai-test:") as worker:
        for call in (lambda: worker.chat(PHI), lambda: worker.chat(PHI, session_id="0" * 32)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call()
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "session store unavailable" in caught.value.details() and PHI not in caught.value.details()
