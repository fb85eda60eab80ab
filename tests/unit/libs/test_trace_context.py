"""The light trace path (spans not recorded): trace ids still follow a call through a real gRPC server."""
from __future__ import annotations

import grpc
from opentelemetry import trace

from libs.rpc.tracing import TraceContextInterceptor, recording, trace_metadata

TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


async def _seen(request: bytes, context) -> bytes:
    """What the handler sees: its span's ids, and the traceparent it would send downstream."""
    span = trace.get_current_span().get_span_context()
    downstream = dict(trace_metadata()).get("traceparent", "")
    return f"{span.trace_id:032x} {span.span_id:016x} {span.is_valid} {downstream}".encode()


async def _call(metadata: tuple[tuple[str, str], ...] = ()) -> list[str]:
    server = grpc.aio.server(interceptors=[TraceContextInterceptor()])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "test.Trace", {"Seen": grpc.unary_unary_rpc_method_handler(_seen)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await channel.unary_unary("/test.Trace/Seen")(b"", metadata=metadata, timeout=10)
    finally:
        await server.stop(None)
    return answer.decode().split(" ")


async def test_the_callers_trace_continues_under_a_span_of_the_call():
    trace_id, span_id, valid, downstream = await _call((("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),))
    assert not recording()  # no provider installed in tests: the light path is the one in use
    assert (trace_id, valid) == (TRACE_ID, "True") and span_id not in (PARENT_ID, "0" * 16)
    assert downstream == f"00-{TRACE_ID}-{span_id}-01"  # the next hop's parent is this call


async def test_a_call_without_trace_context_starts_a_trace_of_its_own():
    first, second = await _call(), await _call()
    assert first[2] == second[2] == "True"
    assert first[0] != second[0] and int(first[0], 16) != 0
    assert first[3].split("-")[1] == first[0] and first[3].endswith("-00")  # not sampled
