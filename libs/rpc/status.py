"""Domain errors <-> gRPC status codes, in both directions, from one table."""
from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Iterable

import grpc

from libs.errors import (
    Cancelled,
    DeadlineExceeded,
    InvalidInput,
    MedaiError,
    NotFound,
    NotReady,
    Overloaded,
    PermissionDenied,
    Unauthenticated,
)

STATUS_BY_ERROR: dict[type[MedaiError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Cancelled: grpc.StatusCode.CANCELLED,
}
ERROR_BY_STATUS: dict[grpc.StatusCode, type[MedaiError]] = {code: error for error, code in STATUS_BY_ERROR.items()}
INTERNAL_MESSAGE = "internal error"
UNIMPLEMENTED_MESSAGE = "method not implemented"
RETRY_AFTER_KEY = "retry-after"
# Set on every status a MedServe service answers through its ErrorInterceptor: the message was written
# for clients. A status without it comes from the transport (e.g. "failed to connect to 10.0.0.7:50052").
REPORTED_KEY = "medai-reported"
# The wait suggested with an overload that names none (admission queues drain within seconds).
DEFAULT_RETRY_AFTER_SECONDS = 1.0


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-safe message for an error raised by a handler."""
    if isinstance(error, MedaiError):
        for cls in type(error).__mro__:
            if cls in STATUS_BY_ERROR:
                return STATUS_BY_ERROR[cls], error.message
    if isinstance(error, NotImplementedError):  # what the generated servicer base classes raise
        return grpc.StatusCode.UNIMPLEMENTED, UNIMPLEMENTED_MESSAGE
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def retry_after_seconds(error: BaseException) -> int | None:
    """Whole seconds (at least 1) a client should wait before retrying an overload, else None."""
    if not isinstance(error, Overloaded):
        return None
    seconds = error.retry_after_seconds if error.retry_after_seconds is not None else DEFAULT_RETRY_AFTER_SECONDS
    return max(1, math.ceil(seconds))


def trailing_metadata_for(error: BaseException) -> tuple[tuple[str, str], ...]:
    """Metadata sent with an error status: the reported marker, and `retry-after` for every overload;
    Envoy's transcoder passes both on to JSON callers as headers (Retry-After)."""
    seconds = retry_after_seconds(error)
    return ((REPORTED_KEY, "1"),) + (() if seconds is None else ((RETRY_AFTER_KEY, str(seconds)),))


def _metadata_value(metadata: Iterable[tuple[str, str | bytes]] | None, wanted: str) -> str | None:
    for key, value in metadata or ():
        if key == wanted and isinstance(value, str):
            return value
    return None


def _retry_after(metadata: Iterable[tuple[str, str | bytes]] | None) -> float | None:
    value = _metadata_value(metadata, RETRY_AFTER_KEY)
    return float(value) if value is not None and value.isdigit() else None


def error_from_status(code: grpc.StatusCode, details: str | None,
                      trailing: Iterable[tuple[str, str | bytes]] | None = None, *,
                      unavailable_message: str | None = None) -> MedaiError:
    """The domain error for a status a downstream call ended with.

    A status a MedServe service reported keeps its message (and retry hint); one from the transport
    gets the error's own generic message (`unavailable_message` for UNAVAILABLE), so addresses and
    library texts never travel on to a client."""
    error_class = ERROR_BY_STATUS.get(code)
    if error_class is None:
        return MedaiError(INTERNAL_MESSAGE)
    trailing = tuple(trailing or ())
    reported = _metadata_value(trailing, REPORTED_KEY) is not None
    message = details if reported and details else None
    if message is None and error_class is NotReady:
        message = unavailable_message
    if error_class is Overloaded:
        error: MedaiError = Overloaded(message, retry_after_seconds=_retry_after(trailing))
    else:
        error = error_class(message)
    error.reported_by_peer = reported
    return error


@contextlib.asynccontextmanager
async def translated_rpc_errors(unavailable_message: str | None = None) -> AsyncIterator[None]:
    """Re-raise a downstream call's RpcError as the matching domain error (see `error_from_status`)."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        raise error_from_status(error.code(), error.details(), error.trailing_metadata(),
                                unavailable_message=unavailable_message) from None
