"""How calls end, through a real server with the mesh's interceptors: a stream that fails after it began
sends an in-band error message before its status; SIGTERM's drain refuses new calls, lets running ones
finish, and ends those still running at its deadline with UNAVAILABLE (an error message first on a
stream); a request that cannot be decoded answers INVALID_ARGUMENT naming the field."""
from __future__ import annotations

import asyncio

import grpc
import pytest

from libs.config import GenerationSettings
from libs.errors import NotReady
from libs.rpc.channels import open_channel
from libs.rpc.drain import DRAINING_MESSAGE, INTERRUPTED_MESSAGE
from libs.rpc.health import HealthReporter
from libs.rpc.interceptors import ErrorPresenter
from libs.rpc.server import drain_and_stop, new_server
from libs.rpc.status import REPORTED_KEY
from medai.generation.v1 import generation_pb2, generation_pb2_grpc

SERVICE = "medai.generation.v1.Generation"
STREAM = f"/{SERVICE}/GenerateStream"


class PacedGeneration(generation_pb2_grpc.GenerationServicer):
    """Streams `max_new_tokens` chunks, each once the test allows one more (`allow`); a prompt
    "fail after N" raises NotReady after N chunks; a unary call waits for one permit too."""

    def __init__(self) -> None:
        self.permits = asyncio.Semaphore(0)
        self.started = asyncio.Event()

    def allow(self, count: int = 1000) -> None:
        for _ in range(count):
            self.permits.release()

    async def _next(self) -> None:
        self.started.set()
        await self.permits.acquire()

    async def Generate(self, request, context):
        await self._next()
        return generation_pb2.GenerateResponse(text="done", finish_reason="stop")

    async def GenerateStream(self, request, context):
        fail_after = int(request.prompt.split()[-1]) if request.prompt.startswith("fail after") else None
        count = request.parameters.max_new_tokens
        for index in range(count):
            if index == fail_after:
                raise NotReady("model worker unavailable")
            await self._next()
            last = index == count - 1
            yield generation_pb2.GenerateChunk(index=index, text=f"t{index}", finish_reason="stop" if last else None)


def error_chunk(code: str, message: str, request_id: str) -> generation_pb2.GenerateChunk:
    return generation_pb2.GenerateChunk(text=f"ERROR {code}: {message}")


@pytest.fixture
async def served():
    settings = GenerationSettings(host="127.0.0.1", port=0, metrics_port=0)
    health = HealthReporter([SERVICE])
    servicer = PacedGeneration()
    server, port = new_server(settings, health, [SERVICE],
                              lambda s: generation_pb2_grpc.add_GenerationServicer_to_server(servicer, s),
                              {STREAM: ErrorPresenter(stream_chunk=error_chunk)})
    await server.start()
    await health.set_serving(True)
    channel = open_channel(f"127.0.0.1:{port}")
    yield servicer, health, server, channel
    await channel.close()
    await server.stop(0)


def request(prompt: str = "go", tokens: int = 3) -> generation_pb2.GenerateRequest:
    return generation_pb2.GenerateRequest(prompt=prompt, parameters=generation_pb2.GenerationParameters(
        max_new_tokens=tokens))


async def read_all(call) -> tuple[list[str], grpc.StatusCode, str]:
    texts = []
    try:  # read(), not iteration: a test may have read the first chunk already (gRPC forbids mixing the two)
        while (chunk := await call.read()) is not grpc.aio.EOF:
            texts.append(chunk.text)
    except grpc.aio.AioRpcError as error:
        return texts, error.code(), error.details()
    return texts, grpc.StatusCode.OK, ""


async def test_a_stream_that_fails_after_it_began_ends_with_an_error_message_then_the_status(served):
    servicer, _, _, channel = served
    servicer.allow()
    texts, code, details = await read_all(generation_pb2_grpc.GenerationStub(channel).GenerateStream(
        request("fail after 2", tokens=5)))
    assert texts == ["t0", "t1", "ERROR UNAVAILABLE: model worker unavailable"]
    assert (code, details) == (grpc.StatusCode.UNAVAILABLE, "model worker unavailable")


async def test_a_stream_that_fails_before_its_first_message_has_only_the_status(served):
    servicer, _, _, channel = served
    servicer.allow()
    texts, code, _ = await read_all(generation_pb2_grpc.GenerationStub(channel).GenerateStream(
        request("fail after 0")))
    assert (texts, code) == ([], grpc.StatusCode.UNAVAILABLE)  # JSON callers get an HTTP 503, not a 200


async def test_drain_lets_running_calls_finish_and_refuses_new_ones(served):
    servicer, health, server, channel = served
    stub = generation_pb2_grpc.GenerationStub(channel)
    running = asyncio.ensure_future(read_all(stub.GenerateStream(request(tokens=3))))
    await servicer.started.wait()
    stopping = asyncio.ensure_future(drain_and_stop(server, health, drain_seconds=30))
    while not health.drain.draining:
        await asyncio.sleep(0.01)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Generate(request(), timeout=5)
    assert (refused.value.code(), refused.value.details()) == (grpc.StatusCode.UNAVAILABLE, DRAINING_MESSAGE)
    servicer.allow()
    assert await running == (["t0", "t1", "t2"], grpc.StatusCode.OK, "")
    await asyncio.wait_for(stopping, 10)


async def test_calls_still_running_at_the_drain_deadline_end_with_unavailable(served):
    servicer, health, server, channel = served
    stub = generation_pb2_grpc.GenerationStub(channel)
    stream = stub.GenerateStream(request(tokens=3))
    servicer.allow(1)
    first = await stream.read()  # the stream now hangs before its second chunk
    unary = asyncio.ensure_future(stub.Generate(request(), timeout=30))
    await asyncio.sleep(0.1)
    await asyncio.wait_for(drain_and_stop(server, health, drain_seconds=0.5), 10)
    texts, code, details = await read_all(stream)
    assert [first.text, *texts] == ["t0", f"ERROR UNAVAILABLE: {INTERRUPTED_MESSAGE}"]
    assert (code, details) == (grpc.StatusCode.UNAVAILABLE, INTERRUPTED_MESSAGE)
    with pytest.raises(grpc.aio.AioRpcError) as interrupted:
        await unary
    assert interrupted.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_request_that_cannot_be_decoded_is_invalid_argument_naming_the_field(served):
    _, _, _, channel = served
    # GenerateRequest.prompt (field 3) holding bytes that are not UTF-8, as a JSON path "%ff" becomes.
    raw = bytes([0x1A, 0x02, 0xFF, 0xFE])
    call = channel.unary_unary(f"/{SERVICE}/Generate", request_serializer=lambda data: data,
                               response_deserializer=generation_pb2.GenerateResponse.FromString)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(raw, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "prompt: is not valid UTF-8 text"
    assert dict(raised.value.trailing_metadata())[REPORTED_KEY] == "1"
