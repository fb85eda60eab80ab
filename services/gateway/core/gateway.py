"""The gateway's use cases: each authenticates, authorises, admits, validates and forwards."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from libs.catalog import CONVERSATION
from libs.errors import InvalidInput, MedaiError, Overloaded
from libs.security.roles import Permission
from libs.validation import validate_generation_params, validate_inputs
from services.gateway.core.auth import Authenticator, require, require_model, require_model_access
from services.gateway.core.catalog import ModelCatalog
from services.gateway.core.model import Caller, CallMetadata, CatalogEntry, MeshHealth, PredictCall, ServiceStatus
from services.gateway.core.ports import Compliance, Monitor

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 1.0
METRICS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class GatewayLimits:
    """Request limits applied before any work is done."""

    max_in_flight: int
    default_deadline_seconds: float
    max_inputs: int
    max_input_chars: int


class Gateway:
    def __init__(self, authenticator: Authenticator, catalog: ModelCatalog, compliance: Compliance,
                 monitor: Monitor, limits: GatewayLimits, own_status: ServiceStatus) -> None:
        self._auth = authenticator
        self._catalog = catalog
        self._compliance = compliance
        self._monitor = monitor
        self._limits = limits
        self._own_status = own_status
        self._in_flight = 0

    # -- public, unauthenticated -------------------------------------------------------------
    async def health(self) -> MeshHealth:
        """The mesh's health from the monitor; if the monitor cannot answer, what the gateway knows."""
        try:
            return await self._monitor.mesh_health(HEALTH_TIMEOUT_SECONDS)
        except MedaiError:
            return MeshHealth("DEGRADED", {"gateway": self._own_status, "monitor": ServiceStatus("UNKNOWN")})

    async def metrics(self) -> str:
        return await self._monitor.mesh_metrics(METRICS_TIMEOUT_SECONDS)

    # -- models ----------------------------------------------------------------------------
    async def list_models(self, meta: CallMetadata, model_type: str) -> list[Any]:
        principal = await self._auth.authenticate(meta.authorization)
        require(principal, Permission.MODELS_READ)
        entries = await self._catalog.entries()
        return [e.record for e in entries
                if (not model_type or e.model_type == model_type) and principal.may_use(e.model_id)]

    async def model_info(self, meta: CallMetadata, model_id: str) -> Any:
        return (await self._visible_model(meta, model_id)).record

    async def model_health(self, meta: CallMetadata, model_id: str) -> Any:
        await self._visible_model(meta, model_id)
        with self._admitted():
            return await self._compliance.model_health(model_id, self._timeout(meta))

    # -- inference -------------------------------------------------------------------------
    async def predict(self, meta: CallMetadata, call: PredictCall) -> Any:
        caller = await self._authorised_predict(meta, call)
        with self._admitted():
            return await self._compliance.predict(caller, call, self._timeout(meta))

    async def predict_stream(self, meta: CallMetadata, call: PredictCall) -> AsyncIterator[Any]:
        caller = await self._authorised_predict(meta, call, Permission.STREAM)
        if not isinstance(call.inputs, str):
            raise InvalidInput("must be a single string when streaming", field="inputs")
        with self._admitted():
            async for chunk in self._compliance.predict_stream(caller, call, self._timeout(meta)):
                yield chunk

    async def deidentify(self, meta: CallMetadata, text: str) -> Any:
        caller = await self._caller(meta, Permission.PHI_DEIDENTIFY)
        validate_inputs(text, max_items=1, max_chars=self._limits.max_input_chars)
        with self._admitted():
            return await self._compliance.deidentify(caller, text, self._timeout(meta))

    async def delete_session(self, meta: CallMetadata, model_id: str, session_id: str) -> Any:
        caller = await self._caller(meta, Permission.CONVERSATION)
        entry = await self._catalog.get(model_id)
        require_model_access(caller.principal, model_id)
        if entry.model_type != CONVERSATION:
            raise InvalidInput("is not a conversation model; only conversations have sessions", field="model_id")
        if not session_id:
            raise InvalidInput("is required", field="session_id")
        with self._admitted():
            return await self._compliance.delete_session(caller, model_id, session_id, self._timeout(meta))

    # -- audit -----------------------------------------------------------------------------
    async def list_audit_records(self, meta: CallMetadata, query: Any) -> Any:
        caller = await self._caller(meta, Permission.AUDIT_READ)
        with self._admitted():
            return await self._compliance.list_audit_records(caller, query, self._timeout(meta))

    async def verify_audit(self, meta: CallMetadata) -> Any:
        caller = await self._caller(meta, Permission.AUDIT_VERIFY)
        with self._admitted():
            return await self._compliance.verify_audit(caller, self._timeout(meta))

    # -- policy helpers --------------------------------------------------------------------
    async def _caller(self, meta: CallMetadata, *permissions: Permission) -> Caller:
        principal = await self._auth.authenticate(meta.authorization)
        require(principal, *permissions)
        return Caller(meta.request_id, principal, meta.client_address)

    async def _visible_model(self, meta: CallMetadata, model_id: str) -> CatalogEntry:
        principal = await self._auth.authenticate(meta.authorization)
        require(principal, Permission.MODELS_READ)
        entry = await self._catalog.get(model_id)
        require_model_access(principal, model_id)
        return entry

    async def _authorised_predict(self, meta: CallMetadata, call: PredictCall, *extra: Permission) -> Caller:
        caller = await self._caller(meta)
        entry = await self._catalog.get(call.model_id)
        require_model(caller.principal, call.model_id, entry.model_type, *extra)
        validate_inputs(call.inputs, max_items=self._limits.max_inputs, max_chars=self._limits.max_input_chars)
        validate_generation_params(call.params)
        return caller

    def _timeout(self, meta: CallMetadata) -> float:
        """The client's remaining time, or the default deadline when it set none."""
        default = self._limits.default_deadline_seconds
        return min(meta.deadline_seconds, default) if meta.deadline_seconds is not None else default

    @contextlib.contextmanager
    def _admitted(self) -> Iterator[None]:
        if self._in_flight >= self._limits.max_in_flight:
            raise Overloaded("gateway is at its in-flight limit, retry later", retry_after_seconds=1.0)
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
