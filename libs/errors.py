"""The mesh's one domain error hierarchy.

Cores raise these; `libs.rpc.status` maps them to gRPC status codes in one place.
A message is shown to clients as it is, so it names fields and limits and never
contains request text (treat every request body as PHI).
"""
from __future__ import annotations


class MedaiError(Exception):
    """Base of every error the mesh reports on purpose. Unmapped subclasses answer INTERNAL."""

    default_message = "internal error"
    # True when a MedServe service answered this error on purpose (its message is then client-safe);
    # False for errors of the transport (a peer down, a deadline), whose texts may name addresses.
    reported_by_peer = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidInput(MedaiError):
    """The request itself is wrong; `field` names the offending field."""

    default_message = "invalid input"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field and message else message)
        self.field = field


class Unauthenticated(MedaiError):
    default_message = "missing or unknown API key"


class PermissionDenied(MedaiError):
    default_message = "permission denied"


class NotFound(MedaiError):
    default_message = "not found"


class ModelNotFound(NotFound):
    """The message never quotes the id: anything a client sends may be PHI."""

    def __init__(self, model_id: str) -> None:
        super().__init__("model_id: no such model is served here (GET /models lists them)")
        self.model_id = model_id


class NotReady(MedaiError):
    """The service or a dependency cannot serve now (loading, down, draining)."""

    default_message = "service not ready"


class StoreUnavailable(NotReady):
    """A store (database, Redis) does not answer; the message names the store, never an address."""

    def __init__(self, store: str) -> None:
        super().__init__(f"{store} unavailable, retry later")
        self.store = store


class Overloaded(MedaiError):
    """Admission refused: a queue, a concurrency limit or a rate limit is full."""

    default_message = "overloaded, retry later"

    def __init__(self, message: str | None = None, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class DeadlineExceeded(MedaiError):
    default_message = "deadline exceeded"


class Cancelled(MedaiError):
    default_message = "cancelled"
