"""Server interceptors: status mapping (the one place errors become codes), call context, drain."""
from __future__ import annotations

import inspect
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import trace

from libs.errors import InvalidInput, MedaiError
from libs.metrics import RPC_DURATION, RPC_IN_FLIGHT, RPC_REQUESTS
from libs.rpc.context import (
    call_model_var,
    current_request_id,
    new_request_id,
    request_id_from_metadata,
    request_id_var,
)
from libs.rpc.decoding import Undecodable, tolerant
from libs.rpc.drain import Drain
from libs.rpc.status import status_for, trailing_metadata_for

log = logging.getLogger(__name__)
# The request id on every server span, so a trace is found from a client's x-request-id.
REQUEST_ID_ATTRIBUTE = "medai.request_id"

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
# Builds the last message of a public stream that fails after it began: (status code name, message,
# request id) -> a response message carrying the error in-band (the HTTP status is already sent).
StreamErrorChunk = Callable[[str, str, str], Any]
# Extra trailing metadata describing an error for a public API's own error shape: (the error, status code
# name, message) -> metadata pairs (Envoy turns them into response headers of a JSON call).
ErrorMetadata = Callable[[BaseException, str, str], tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class ErrorPresenter:
    """How one public method presents a failure beyond its status (see `ErrorInterceptor`)."""

    stream_chunk: StreamErrorChunk | None = None
    metadata: ErrorMetadata | None = None
# Not application calls: long-lived probes and discovery (never drained, never counted as calls).
INFRASTRUCTURE_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def rewrap(
    handler: grpc.RpcMethodHandler,
    wrap_unary: Callable[[UnaryBehavior], UnaryBehavior],
    wrap_stream: Callable[[StreamBehavior], StreamBehavior],
    deserializer: Callable | None = None,
) -> grpc.RpcMethodHandler:
    """A copy of handler whose unary-request behaviours are wrapped (client streams are not used)."""
    deserializer = deserializer or handler.request_deserializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap_unary(handler.unary_unary), deserializer, handler.response_serializer
        )
    if handler.unary_stream and inspect.isasyncgenfunction(handler.unary_stream):
        return grpc.unary_stream_rpc_method_handler(
            wrap_stream(handler.unary_stream), deserializer, handler.response_serializer
        )
    return handler


def _decoded(request: Any) -> Any:
    """The request, or InvalidInput naming the field that could not be decoded."""
    if isinstance(request, Undecodable):
        raise InvalidInput(request.reason, field=request.field)
    return request


async def _abort_with(context: grpc.aio.ServicerContext, error: Exception, method: str,
                      presenter: ErrorPresenter | None = None) -> None:
    code, message = status_for(error)
    if code == grpc.StatusCode.INTERNAL:
        # The exception's message may hold request data; log its type and frames only.
        frames = "".join(traceback.format_tb(error.__traceback__))
        log.error("unhandled error in %s: %s", method, type(error).__name__, extra={"stack": frames})
    extra = presenter.metadata(error, code.name, message) if presenter and presenter.metadata else ()
    await context.abort(code, message, trailing_metadata_for(error) + extra)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain errors (and anything unexpected) raised by a handler to a gRPC status.

    A request that cannot be decoded answers INVALID_ARGUMENT naming the field. A public method may
    have a presenter: a stream that fails after its first message then ends with an in-band error
    message first, so a JSON/SSE client (whose HTTP status is already 200) can tell a cut stream
    from a complete one (the status follows as usual for gRPC callers); and an error may carry
    metadata for the API's own error shape (e.g. OpenAI's)."""

    def __init__(self, presenters: Mapping[str, ErrorPresenter] | None = None) -> None:
        self._presenters = dict(presenters or {})

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        presenter = self._presenters.get(method)
        error_chunk = presenter.stream_chunk if presenter else None

        def wrap_unary(behavior: UnaryBehavior) -> UnaryBehavior:
            async def guarded(request, context):
                try:
                    return await behavior(_decoded(request), context)
                except (MedaiError, Exception) as error:
                    if isinstance(error, grpc.aio.AbortError):
                        raise
                    await _abort_with(context, error, method, presenter)

            return guarded

        def wrap_stream(behavior: StreamBehavior) -> StreamBehavior:
            async def guarded(request, context):
                sent = 0
                try:
                    async for item in behavior(_decoded(request), context):
                        yield item
                        sent += 1
                except (MedaiError, Exception) as error:
                    if isinstance(error, grpc.aio.AbortError):
                        raise
                    if sent and error_chunk is not None:
                        code, message = status_for(error)
                        log.warning("stream %s ended with %s after %d messages", method, code.name, sent)
                        yield error_chunk(code.name, message, current_request_id())
                    await _abort_with(context, error, method, presenter)

            return guarded

        return rewrap(handler, wrap_unary, wrap_stream, tolerant(handler.request_deserializer))


class DrainInterceptor(grpc.aio.ServerInterceptor):
    """Registers application calls with the server's drain (refused once it drains, interrupted at its
    deadline). Innermost: its NotReady passes through the ErrorInterceptor like any handler error."""

    def __init__(self, drain: Drain) -> None:
        self._drain = drain

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(INFRASTRUCTURE_PREFIXES):
            return handler
        drain = self._drain

        def wrap_unary(behavior: UnaryBehavior) -> UnaryBehavior:
            async def drained(request, context):
                call = drain.admit()
                try:
                    return await call.run(behavior(request, context))
                finally:
                    drain.leave(call)

            return drained

        def wrap_stream(behavior: StreamBehavior) -> StreamBehavior:
            async def drained(request, context):
                call = drain.admit()
                items = behavior(request, context)
                try:
                    while True:
                        try:
                            item = await call.run(anext(items))
                        except StopAsyncIteration:
                            return
                        yield item
                finally:
                    drain.leave(call)
                    await items.aclose()

            return drained

        return rewrap(handler, wrap_unary, wrap_stream)


class CallContextInterceptor(grpc.aio.ServerInterceptor):
    """Sets the request id for logs and downstream calls, and records call metrics."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        request_id = request_id_from_metadata(handler_call_details.invocation_metadata)

        def enter() -> tuple[Any, Any, float]:
            RPC_IN_FLIGHT.inc()
            call_id = request_id or new_request_id()
            trace.get_current_span().set_attribute(REQUEST_ID_ATTRIBUTE, call_id)
            return request_id_var.set(call_id), call_model_var.set(""), time.perf_counter()

        def leave(tokens: tuple[Any, Any], started: float, context: grpc.aio.ServicerContext) -> None:
            RPC_IN_FLIGHT.dec()
            code = context.code() or grpc.StatusCode.OK
            model_id = call_model_var.get()
            RPC_REQUESTS.labels(method, getattr(code, "name", str(code)), model_id).inc()
            RPC_DURATION.labels(method, model_id).observe(time.perf_counter() - started)
            request_id_var.reset(tokens[0])
            call_model_var.reset(tokens[1])

        def wrap_unary(behavior: UnaryBehavior) -> UnaryBehavior:
            async def observed(request, context):
                request_token, model_token, started = enter()
                try:
                    return await behavior(request, context)
                finally:
                    leave((request_token, model_token), started, context)

            return observed

        def wrap_stream(behavior: StreamBehavior) -> StreamBehavior:
            async def observed(request, context):
                request_token, model_token, started = enter()
                try:
                    async for item in behavior(request, context):
                        yield item
                finally:
                    leave((request_token, model_token), started, context)

            return observed

        return rewrap(handler, wrap_unary, wrap_stream)
