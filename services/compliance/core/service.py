"""The compliance core assembled from settings, and its startup (readiness only once PHI analysis works)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from libs.config import ComplianceSettings
from libs.lifecycle import Readiness
from services.compliance.core.catalog import ModelCatalog
from services.compliance.core.deidentify import Deidentifier, DisabledDeidentifier, RedactionPolicy, Redactor
from services.compliance.core.handlers import build_handlers
from services.compliance.core.ports import WorkerClients
from services.compliance.core.proxy import ComplianceProxy, ProxyLimits
from services.compliance.core.registry import ModelRegistry


@dataclass
class ComplianceCore:
    registry: ModelRegistry
    redactor: Redactor
    proxy: ComplianceProxy
    catalog: ModelCatalog

    @classmethod
    def from_settings(cls, settings: ComplianceSettings, workers: WorkerClients, executor: Executor) -> ComplianceCore:
        registry = ModelRegistry(settings.workers, workers, refresh_seconds=settings.registry_refresh_seconds,
                                 timeout_seconds=settings.catalog_timeout_seconds)
        medical = settings.medical
        policy = RedactionPolicy(medical.score_threshold, frozenset(medical.allowed_phi_fields))
        redactor = Redactor(executor, policy)
        proxy = ComplianceProxy(
            registry, redactor, build_handlers(workers), workers,
            ProxyLimits(max_inputs=settings.max_inputs, max_input_chars=settings.max_input_chars),
            redact_outputs=settings.redact_outputs,
        )
        return cls(registry, redactor, proxy, ModelCatalog(registry, workers, settings.catalog_timeout_seconds))

    async def start(self, build: Callable[[], Deidentifier], readiness: Readiness) -> None:
        """Learn the workers' models and build and warm the deidentifier; then report SERVING."""
        await readiness.set_serving(False)
        await asyncio.gather(self.registry.refresh(), self.redactor.load(build))
        await readiness.set_serving(True)


def deidentifier_builder(settings: ComplianceSettings) -> Callable[[], Deidentifier]:
    """What builds the deidentifier the settings ask for (called in a worker thread: it takes seconds)."""
    if not settings.medical.phi_detection_enabled:
        return DisabledDeidentifier

    def build() -> Deidentifier:
        from services.compliance.core.presidio import PresidioConfig, PresidioDeidentifier  # heavy import

        return PresidioDeidentifier(PresidioConfig(settings.medical.spacy_model, settings.tldextract_cache_dir))

    return build
