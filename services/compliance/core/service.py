"""The compliance core assembled from settings, and its startup (readiness only once PHI analysis works)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from libs.config import AppSettings, ComplianceSettings
from libs.lifecycle import Readiness
from libs.logs import AUDIT_LOG, LineFile, LogFiles
from libs.security.kek import load_kek
from libs.security.secret import load_secret
from libs.security.signing import load_or_create_signer, load_verifier
from libs.stores.audit import AuditStore
from libs.stores.cache import open_cache_store
from libs.stores.db import open_database
from libs.stores.payloads import PayloadVault
from libs.stores.redis_client import open_redis
from services.compliance.core.audit import AuditLog, AuditMirror, AuditPolicy, Digester, Spool, audit_line
from services.compliance.core.cache import CacheStore, ResponseCache
from services.compliance.core.catalog import ModelCatalog
from services.compliance.core.deidentify import Deidentifier, DisabledDeidentifier, RedactionPolicy, Redactor
from services.compliance.core.handlers import build_handlers
from services.compliance.core.ports import WorkerClients
from services.compliance.core.proxy import ComplianceProxy, ProxyLimits, Safeguards
from services.compliance.core.registry import ModelRegistry
from services.compliance.core.session_placeholders import (
    InMemorySealedStore,
    RedisSealedStore,
    SessionPlaceholders,
)

log = logging.getLogger(__name__)


@dataclass
class ComplianceCore:
    registry: ModelRegistry
    redactor: Redactor
    proxy: ComplianceProxy
    catalog: ModelCatalog
    safeguards: Safeguards = field(default_factory=Safeguards)
    vault: LazyVault | None = None
    retention_days: int = 0
    purge_interval_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, settings: ComplianceSettings, workers: WorkerClients, executor: Executor,
                      cache_store: CacheStore | None = None) -> ComplianceCore:
        registry = ModelRegistry(settings.workers, workers, refresh_seconds=settings.registry_refresh_seconds,
                                 timeout_seconds=settings.catalog_timeout_seconds)
        medical = settings.medical
        policy = RedactionPolicy(medical.score_threshold, frozenset(medical.allowed_phi_fields),
                                 medical.redaction_operator, load_secret(settings.app))
        redactor = Redactor(executor, policy, batch_size=settings.deidentify_batch_size,
                            batch_wait_seconds=settings.deidentify_batch_wait_ms / 1000)
        safeguards, vault = build_safeguards(settings)
        proxy = ComplianceProxy(
            registry, redactor, build_handlers(workers), workers,
            ProxyLimits(max_inputs=settings.max_inputs, max_input_chars=settings.max_input_chars,
                        audit_list_max=settings.audit_list_max, max_chat_messages=settings.max_chat_messages),
            redact_outputs=settings.redact_outputs, cache=response_cache(settings, cache_store),
            safeguards=safeguards,
        )
        return cls(registry, redactor, proxy, ModelCatalog(registry, workers, settings.catalog_timeout_seconds),
                   safeguards, vault, medical.data_retention_days, medical.purge_interval_seconds)

    async def start(self, build: Callable[[], Deidentifier], readiness: Readiness) -> None:
        """Learn the workers' models and build and warm the deidentifier; then report SERVING."""
        await readiness.set_serving(False)
        audit = self.safeguards.audit
        await asyncio.gather(self.registry.refresh(), self.redactor.load(build),
                             *([audit.start()] if audit is not None else []))
        await readiness.set_serving(True)

    def background(self) -> list[Callable[[], Awaitable[None]]]:
        """Jobs to run while serving: audit spool replay, payload key purge."""
        jobs: list[Callable[[], Awaitable[None]]] = []
        if self.safeguards.audit is not None:
            jobs.append(self.safeguards.audit.run)
        if self.vault is not None and self.retention_days:
            jobs.append(self._purge_forever)
        return jobs

    async def _purge_forever(self) -> None:
        while True:
            await self.vault.purge(self.retention_days)
            await asyncio.sleep(self.purge_interval_seconds)

    async def close(self) -> None:
        guards = self.safeguards
        for closing in (guards.audit, guards.sessions, self.vault):
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing.close()


class LazyVault:
    """The payload vault, opened on first use (its database may be slower to come than the service)."""

    def __init__(self, url: str, kek: bytes, timeout: float) -> None:
        self._url, self._kek, self._timeout = url, kek, timeout
        self._vault: PayloadVault | None = None
        self._lock = asyncio.Lock()

    async def opened(self) -> PayloadVault:
        async with self._lock:
            if self._vault is None:
                vault = PayloadVault(await open_database(self._url, timeout=self._timeout), self._kek)
                await vault.migrate()
                self._vault = vault
        return self._vault

    async def seal(self, record_id: str, purpose: str, payload: bytes) -> None:
        await (await self.opened()).seal(record_id, purpose, payload)

    async def purge(self, retention_days: int) -> int:
        try:
            return await (await self.opened()).purge(retention_days)
        except Exception as error:  # retried at the next interval
            log.warning("payload key purge failed", extra={"error": type(error).__name__})
            return 0

    async def close(self) -> None:
        if self._vault is not None:
            await self._vault.db.close()


def build_safeguards(settings: ComplianceSettings) -> tuple[Safeguards, LazyVault | None]:
    """Audit log (database + spool + signer), digests, session placeholder store, payload vault."""
    medical, app = settings.medical, settings.app
    if medical.store_payloads and not medical.enable_encryption:
        raise ValueError("MEDICAL_STORE_PAYLOADS=true needs MEDICAL_ENABLE_ENCRYPTION=true: payloads are PHI")
    pepper = load_secret(app)
    url = app.resolved_database_url()

    async def open_store() -> AuditStore:
        store = AuditStore(await open_database(url, timeout=medical.audit_db_timeout_seconds))
        try:
            await store.migrate()
        except BaseException:
            await store.db.close()
            raise
        return store

    key_file = medical.audit_signing_key_file or app.state_dir / "audit-signing.key"
    signer = load_or_create_signer(key_file) if medical.audit_checkpoint_every else None
    verifier = load_verifier(key_file) if key_file.exists() else None
    audit = AuditLog(open_store, Spool(medical.audit_spool_path or app.data_dir / "audit-spool.jsonl"),
                     AuditPolicy(medical.audit_fail_closed, medical.audit_retry_seconds,
                                 medical.audit_checkpoint_every),
                     signer, verifier, audit_file_mirror(app))
    sealed = RedisSealedStore(open_redis(app.redis_url)) if app.redis_url else InMemorySealedStore()
    vault = LazyVault(url, load_kek(medical, app), medical.audit_db_timeout_seconds) \
        if medical.store_payloads and medical.enable_encryption else None
    return Safeguards(audit=audit, digester=Digester(pepper),
                      sessions=SessionPlaceholders(sealed, pepper, settings.session_placeholders_ttl_seconds),
                      vault=vault, stream_holdback_chars=settings.stream_holdback_chars,
                      stream_min_release_chars=settings.stream_min_release_chars), vault


def audit_file_mirror(app: AppSettings) -> AuditMirror | None:
    """With APP_LOG_DIR: a line per audit record in audit.log (this process is its one writer)."""
    files = LogFiles.of(app)
    if files is None:
        return None
    audit_log = LineFile(files, AUDIT_LOG)
    return lambda event, destination: audit_log.write(audit_line(event, destination))


def response_cache(settings: ComplianceSettings, store: CacheStore | None = None) -> ResponseCache | None:
    """The response cache the settings ask for (store: Redis at APP_REDIS_URL, else in-process), or None."""
    if not settings.cache_enabled:
        return None
    if store is None:
        store = open_cache_store(settings.app.redis_url, settings.cache_ttl_seconds, settings.max_cache_size)
    return ResponseCache(store, load_secret(settings.app))


def deidentifier_builder(settings: ComplianceSettings) -> Callable[[], Deidentifier]:
    """What builds the deidentifier the settings ask for (called in a worker thread: it takes seconds)."""
    if not settings.medical.phi_detection_enabled:
        return DisabledDeidentifier

    def build() -> Deidentifier:
        from services.compliance.core.presidio import PresidioConfig, PresidioDeidentifier  # heavy import

        return PresidioDeidentifier(PresidioConfig(settings.medical.spacy_model, settings.tldextract_cache_dir))

    return build
