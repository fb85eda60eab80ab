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


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-safe message for an error raised by a handler."""
    if isinstance(error, MedaiError):
        for cls in type(error).__mro__:
            if cls in STATUS_BY_ERROR:
                return STATUS_BY_ERROR[cls], error.message
    if isinstance(error, NotImplementedError):  # what the generated servicer base classes raise
        return grpc.StatusCode.UNIMPLEMENTED, UNIMPLEMENTED_MESSAGE
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


RETRY_AFTER_KEY = "retry-after"


def trailing_metadata_for(error: BaseException) -> tuple[tuple[str, str], ...]:
    """Metadata sent with an error status: `retry-after` (whole seconds, at least 1) for Overloaded
    with a hint; Envoy's transcoder passes it on to JSON callers as the Retry-After header."""
    seconds = getattr(error, "retry_after_seconds", None) if isinstance(error, Overloaded) else None
    return () if seconds is None else ((RETRY_AFTER_KEY, str(max(1, math.ceil(seconds)))),)


def _retry_after(metadata: Iterable[tuple[str, str | bytes]] | None) -> float | None:
    for key, value in metadata or ():
        if key == RETRY_AFTER_KEY and isinstance(value, str) and value.isdigit():
            return float(value)
    return None


def error_from_status(code: grpc.StatusCode, details: str | None,
                      trailing: Iterable[tuple[str, str | bytes]] | None = None) -> MedaiError:
    """The domain error for a status a downstream service answered, keeping its message (and retry hint)."""
    error_class = ERROR_BY_STATUS.get(code)
    if error_class is None:
        return MedaiError(INTERNAL_MESSAGE)
    if error_class is Overloaded:
        return Overloaded(details or None, retry_after_seconds=_retry_after(trailing))
    return error_class(details or None)


@contextlib.asynccontextmanager
async def translated_rpc_errors() -> AsyncIterator[None]:
    """Re-raise a downstream call's RpcError as the matching domain error."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        raise error_from_status(error.code(), error.details(), error.trailing_metadata()) from None
