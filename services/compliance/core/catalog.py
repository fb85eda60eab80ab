"""The model catalogue aggregated over every worker (what GET /models and its sub-routes read)."""
from __future__ import annotations

from datetime import UTC, datetime

from libs.catalog import MODEL_TYPES, UNAVAILABLE, ModelCard, ModelHealthReport
from libs.errors import DeadlineExceeded, InvalidInput, NotReady
from services.compliance.core.ports import CatalogClient
from services.compliance.core.registry import ModelRegistry


class ModelCatalog:
    def __init__(self, registry: ModelRegistry, catalog: CatalogClient, timeout_seconds: float) -> None:
        self._registry = registry
        self._catalog = catalog
        self._timeout = timeout_seconds

    def list_models(self, model_type: str = "") -> list[ModelCard]:
        """Every known model, or only those of model_type."""
        if model_type and model_type not in MODEL_TYPES:
            raise InvalidInput(f"must be one of {', '.join(sorted(MODEL_TYPES))}", field="model_type")
        return [info for info in self._registry.models() if not model_type or info.model_type == model_type]

    async def model_info(self, model_id: str) -> ModelCard:
        return (await self._registry.route(_required_model_id(model_id))).listed_info

    async def model_health(self, model_id: str, timeout: float | None) -> ModelHealthReport:
        """The worker's answer for the model, or UNAVAILABLE when the worker cannot be reached."""
        route = await self._registry.route(_required_model_id(model_id))
        deadline = self._timeout if timeout is None else min(timeout, self._timeout)
        try:
            return await self._catalog.model_health(route.address, model_id, deadline)
        except (NotReady, DeadlineExceeded):
            return ModelHealthReport(model_id=model_id, status=UNAVAILABLE, checked_at=datetime.now(UTC))


def _required_model_id(model_id: str) -> str:
    if not model_id:
        raise InvalidInput("is required", field="model_id")
    return model_id
