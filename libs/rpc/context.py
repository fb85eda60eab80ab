"""Per-call context (request id) carried in contextvars and gRPC metadata."""
from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterable

REQUEST_ID_HEADER = "x-request-id"

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# The model a call is about, once a service has checked it is a known one (a metrics label: never a
# client-chosen string that no catalogue lists).
call_model_var: contextvars.ContextVar[str] = contextvars.ContextVar("call_model", default="")


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()


def set_call_model(model_id: str) -> None:
    """Label this call's metrics with a known model id (the server interceptor reads it at the end)."""
    call_model_var.set(model_id)


def request_id_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The caller's x-request-id, if it sent a sane one (ids are echoed into logs)."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and _is_safe_id(value):
            return value
    return ""


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata to attach to a downstream call so the request id follows it."""
    request_id = current_request_id()
    return ((REQUEST_ID_HEADER, request_id),) if request_id else ()


def _is_safe_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all(c.isalnum() or c in "-_." for c in value)
