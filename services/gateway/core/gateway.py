"""The gateway's use cases: each authenticates, rate-limits, authorises, validates, admits and forwards."""
from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from libs.catalog import CONVERSATION, TEXT_GENERATION
from libs.errors import InvalidInput, MedaiError, Overloaded, PermissionDenied, Unauthenticated
from libs.rpc.context import set_call_model
from libs.security.roles import Permission
from libs.stores.ratelimit import InMemoryRateLimitStore
from services.gateway.core.auth import Authenticator, KeyRefused, require, require_model, require_model_access
from services.gateway.core.catalog import ModelCatalog
from services.gateway.core.model import (
    Caller,
    CallMetadata,
    CatalogEntry,
    MeshHealth,
    PredictCall,
    Principal,
    Refusal,
    ServiceStatus,
)
from services.gateway.core.ports import Compliance, Monitor, RefusalLog
from services.gateway.core.quota import Quotas
from services.gateway.core.validation import RequestLimits, validate_predict, validate_text

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 1.0
# Time kept from a client's deadline for the gateway's own answer (at most a tenth of it).
DEADLINE_MARGIN_SECONDS = 0.25
METRICS_TIMEOUT_SECONDS = 5.0


# Model types whose calls generate tokens (charged to the key's token budget).
GENERATING_TYPES = frozenset({TEXT_GENERATION, CONVERSATION})
# Refusals of the gateway's own that leave an audit record, by the status they answer.
AUDITED_REFUSALS: dict[type[MedaiError], str] = {
    Unauthenticated: "UNAUTHENTICATED", PermissionDenied: "PERMISSION_DENIED", Overloaded: "RESOURCE_EXHAUSTED",
}
# The principal of the call being handled, once authenticated (for the refusal record).
_principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


class _NoRefusalLog:
    def record(self, refusal: Refusal) -> None:
        pass

    async def close(self) -> None:
        pass


@dataclass(frozen=True)
class GatewayLimits:
    """Request limits applied before any work is done, and deadlines."""

    max_in_flight: int
    default_deadline_seconds: float
    max_inputs: int
    max_input_chars: int
    max_request_bytes: int = 1_048_576
    max_chat_messages: int = 256
    # Deadline by model type when the client sets none (else default_deadline_seconds).
    model_type_deadlines: Mapping[str, float] = field(default_factory=dict)

    @property
    def request(self) -> RequestLimits:
        return RequestLimits(self.max_request_bytes, self.max_inputs, self.max_input_chars, self.max_chat_messages)


class Gateway:
    def __init__(self, authenticator: Authenticator, catalog: ModelCatalog, compliance: Compliance,
                 monitor: Monitor, limits: GatewayLimits, own_status: ServiceStatus,
                 quotas: Quotas | None = None, refusals: RefusalLog | None = None) -> None:
        self._auth = authenticator
        self._catalog = catalog
        self._compliance = compliance
        self._monitor = monitor
        self._limits = limits
        self._own_status = own_status
        self._quotas = quotas if quotas is not None else Quotas(InMemoryRateLimitStore())
        self._refusals = refusals if refusals is not None else _NoRefusalLog()
        self._in_flight = 0

    # -- public, unauthenticated -------------------------------------------------------------
    async def health(self) -> MeshHealth:
        """The mesh's health from the monitor; if the monitor cannot answer, what the gateway knows."""
        try:
            return await self._monitor.mesh_health(HEALTH_TIMEOUT_SECONDS)
        except MedaiError:
            return MeshHealth("DEGRADED", {"gateway": self._own_status, "monitor": ServiceStatus("UNKNOWN")},
                              ["monitor"])

    async def metrics(self) -> str:
        return await self._monitor.mesh_metrics(METRICS_TIMEOUT_SECONDS)

    # -- models ----------------------------------------------------------------------------
    async def list_models(self, meta: CallMetadata, model_type: str) -> list[Any]:
        with self._refusals_audited(meta, "models.list"):
            principal = await self._principal(meta)
            require(principal, Permission.MODELS_READ)
            entries = await self._catalog.entries()
            return [e.record for e in entries
                    if (not model_type or e.model_type == model_type) and principal.may_use(e.model_id)]

    async def model_info(self, meta: CallMetadata, model_id: str) -> Any:
        with self._refusals_audited(meta, "models.info", model_id):
            return (await self._visible_model(meta, model_id)).record

    async def model_health(self, meta: CallMetadata, model_id: str) -> Any:
        with self._refusals_audited(meta, "models.health", model_id):
            await self._visible_model(meta, model_id)
            with self._admitted():
                return await self._compliance.model_health(model_id, self._timeout(meta))

    # -- inference -------------------------------------------------------------------------
    async def predict(self, meta: CallMetadata, call: PredictCall) -> Any:
        with self._refusals_audited(meta, "predict", call.model_id):
            caller, entry = await self._authorised_predict(meta, call)
            generates = entry.model_type in GENERATING_TYPES
            if generates:
                await self._quotas.check_tokens(caller.principal)
            with self._admitted():
                reply = await self._compliance.predict(caller, call, self._timeout(meta, entry.model_type))
        if generates:
            await self._quotas.charge_tokens(caller.principal, self._compliance.generated_tokens(reply) or 0)
        return reply

    async def predict_stream(self, meta: CallMetadata, call: PredictCall) -> AsyncIterator[Any]:
        with contextlib.ExitStack() as admission:
            with self._refusals_audited(meta, "predict_stream", call.model_id):
                caller, entry = await self._authorised_predict(meta, call, Permission.STREAM)
                if not call.single:
                    raise InvalidInput("must be a single string when streaming", field="inputs")
                await self._quotas.check_tokens(caller.principal)
                admission.enter_context(self._admitted())
            usage = _StreamUsage()
            try:
                async for chunk in self._compliance.predict_stream(caller, call,
                                                                   self._timeout(meta, entry.model_type)):
                    usage.observe(self._compliance.generated_tokens(chunk))
                    yield chunk
            finally:
                await self._quotas.charge_tokens(caller.principal, usage.tokens)

    async def deidentify(self, meta: CallMetadata, text: str) -> Any:
        with self._refusals_audited(meta, "deidentify"):
            caller = await self._caller(meta, Permission.PHI_DEIDENTIFY)
            validate_text(text, field="text", max_chars=self._limits.max_input_chars)
            with self._admitted():
                return await self._compliance.deidentify(caller, text, self._timeout(meta))

    async def delete_session(self, meta: CallMetadata, model_id: str, session_id: str) -> Any:
        with self._refusals_audited(meta, "delete_session", model_id):
            caller = await self._caller(meta, Permission.CONVERSATION)
            entry = await self._catalog.get(model_id)
            require_model_access(caller.principal, model_id)
            if entry.model_type != CONVERSATION:
                raise InvalidInput("is not a conversation model; only conversations have sessions",
                                   field="model_id")
            if not session_id:
                raise InvalidInput("is required", field="session_id")
            with self._admitted():
                return await self._compliance.delete_session(caller, model_id, session_id, self._timeout(meta))

    # -- audit -----------------------------------------------------------------------------
    async def list_audit_records(self, meta: CallMetadata, query: Any) -> Any:
        with self._refusals_audited(meta, "audit.list"):
            caller = await self._caller(meta, Permission.AUDIT_READ)
            with self._admitted():
                return await self._compliance.list_audit_records(caller, query, self._timeout(meta))

    async def verify_audit(self, meta: CallMetadata) -> Any:
        with self._refusals_audited(meta, "audit.verify"):
            caller = await self._caller(meta, Permission.AUDIT_VERIFY)
            with self._admitted():
                return await self._compliance.verify_audit(caller, self._timeout(meta))

    # -- monitoring ------------------------------------------------------------------------
    async def alerts(self, meta: CallMetadata) -> Any:
        with self._refusals_audited(meta, "monitoring.alerts"):
            await self._caller(meta, Permission.MONITORING_READ)
            with self._admitted():
                return await self._monitor.alerts(min(self._timeout(meta), METRICS_TIMEOUT_SECONDS))

    async def system_metrics(self, meta: CallMetadata) -> Any:
        with self._refusals_audited(meta, "monitoring.system"):
            await self._caller(meta, Permission.MONITORING_READ)
            with self._admitted():
                return await self._monitor.system_metrics(min(self._timeout(meta), METRICS_TIMEOUT_SECONDS))

    # -- policy helpers --------------------------------------------------------------------
    async def _principal(self, meta: CallMetadata) -> Principal:
        """The authenticated caller, charged one request of its key's rate limit."""
        principal = await self._auth.authenticate(meta.authorization)
        _principal_var.set(principal)
        await self._quotas.admit_request(principal)
        return principal

    @contextlib.contextmanager
    def _refusals_audited(self, meta: CallMetadata, action: str, model_id: str = "") -> Iterator[None]:
        """Record a refusal of the gateway's own (401, 403, 429) for the audit trail; errors that
        compliance reported are audited there."""
        token = _principal_var.set(None)
        try:
            yield
        except (Unauthenticated, PermissionDenied, Overloaded) as error:
            if not error.reported_by_peer:
                self._refusals.record(self._refusal(meta, action, model_id, error))
            raise
        finally:
            _principal_var.reset(token)
            if model_id and self._catalog.knows(model_id):  # the call's metrics by model (known ids only)
                set_call_model(model_id)

    def _refusal(self, meta: CallMetadata, action: str, model_id: str, error: MedaiError) -> Refusal:
        principal = _principal_var.get()
        status = next(code for kind, code in AUDITED_REFUSALS.items() if isinstance(error, kind))
        return Refusal(
            request_id=meta.request_id, action=action, status_code=status, client_address=meta.client_address,
            principal_id=principal.key_id if principal else "",
            claimed_key_id=error.claimed_key_id if isinstance(error, KeyRefused) else "",
            role=principal.role if principal else "",
            model_id=model_id if self._catalog.knows(model_id) else "",
        )

    async def _caller(self, meta: CallMetadata, *permissions: Permission) -> Caller:
        principal = await self._principal(meta)
        require(principal, *permissions)
        return Caller(meta.request_id, principal, meta.client_address)

    async def _visible_model(self, meta: CallMetadata, model_id: str) -> CatalogEntry:
        principal = await self._principal(meta)
        require(principal, Permission.MODELS_READ)
        entry = await self._catalog.get(model_id)
        require_model_access(principal, model_id)
        return entry

    async def _authorised_predict(self, meta: CallMetadata, call: PredictCall,
                                  *extra: Permission) -> tuple[Caller, CatalogEntry]:
        caller = await self._caller(meta)
        if not call.model_id:
            raise InvalidInput("is required", field="model_id")
        entry = await self._catalog.get(call.model_id)
        require_model(caller.principal, call.model_id, entry.model_type, *extra)
        validate_predict(call, entry, self._limits.request)
        return caller, entry

    def _timeout(self, meta: CallMetadata, model_type: str = "") -> float:
        """The client's remaining time less a margin (so the gateway still answers, and a stream still
        sends its error event, when the work behind it runs out of time); when the client set none,
        the default for the model type (or the general one)."""
        if meta.deadline_seconds is not None:
            return meta.deadline_seconds - min(DEADLINE_MARGIN_SECONDS, meta.deadline_seconds / 10)
        return self._limits.model_type_deadlines.get(model_type, self._limits.default_deadline_seconds)

    async def close(self) -> None:
        await self._quotas.close()
        await self._refusals.close()

    @contextlib.contextmanager
    def _admitted(self) -> Iterator[None]:
        if self._in_flight >= self._limits.max_in_flight:
            raise Overloaded("gateway is at its in-flight limit, retry later", retry_after_seconds=1.0)
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1


class _StreamUsage:
    """Generated tokens of a stream: the usage on its last chunk, or one per chunk if it ended early."""

    def __init__(self) -> None:
        self._chunks = 0
        self._reported: int | None = None

    def observe(self, reported: int | None) -> None:
        self._chunks += 1
        if reported is not None:
            self._reported = reported

    @property
    def tokens(self) -> int:
        return self._reported if self._reported is not None else self._chunks
