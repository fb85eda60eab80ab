"""Settings: one pydantic-settings class per service; shared groups in `base`."""
from libs.config.base import (
    AppSettings,
    MedicalSettings,
    ModelSettings,
    ServingSettings,
    TelemetrySettings,
)
from libs.config.services import (
    SERVICE_SETTINGS,
    ClientSettings,
    ComplianceSettings,
    ConversationSettings,
    EmbeddingSettings,
    EnvoySettings,
    GatewaySettings,
    GenerationSettings,
    LauncherSettings,
    MonitoredService,
    MonitorSettings,
    ServiceSettings,
    WorkerSettings,
)
from libs.config.tls import TlsFiles, TlsSettings

__all__ = [
    "SERVICE_SETTINGS",
    "AppSettings",
    "ClientSettings",
    "ComplianceSettings",
    "ConversationSettings",
    "EmbeddingSettings",
    "EnvoySettings",
    "GatewaySettings",
    "GenerationSettings",
    "LauncherSettings",
    "MedicalSettings",
    "ModelSettings",
    "MonitorSettings",
    "MonitoredService",
    "ServiceSettings",
    "ServingSettings",
    "TelemetrySettings",
    "TlsFiles",
    "TlsSettings",
    "WorkerSettings",
]
