"""Settings: Part B defaults, env prefixes, and `.env.example` documenting every variable."""
from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from libs.config import (
    SERVICE_SETTINGS,
    AppSettings,
    ClientSettings,
    EnvoySettings,
    GatewaySettings,
    GenerationSettings,
    LauncherSettings,
    MedicalSettings,
    ModelSettings,
    ServingSettings,
    TelemetrySettings,
    TlsSettings,
)

ROOT = Path(__file__).resolve().parents[3]
SETTINGS_CLASSES: list[type[BaseSettings]] = [
    AppSettings, TelemetrySettings, ModelSettings, ServingSettings, MedicalSettings, TlsSettings, EnvoySettings,
    LauncherSettings, ClientSettings, *SERVICE_SETTINGS.values(),
]


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Variables a class reads itself (nested settings groups are read through their own prefix)."""
    prefix = cls.model_config.get("env_prefix", "")
    return {
        f"{prefix}{name}".upper()
        for name, field in cls.model_fields.items()
        if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings))
    }


def test_part_b_network_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    envoy = EnvoySettings()
    assert (envoy.host, envoy.port, envoy.admin_port) == ("127.0.0.1", 8080, 9901)
    assert all(cls().host == "127.0.0.1" for cls in SERVICE_SETTINGS.values())
    ports = [cls().port for cls in SERVICE_SETTINGS.values()]
    assert len(set(ports)) == len(ports)


def test_each_service_reads_its_own_prefix(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_PORT", "6001")
    monkeypatch.setenv("GENERATION_MODEL_ID", "other-model")
    monkeypatch.setenv("MODEL_DEVICE", "cpu")
    monkeypatch.setenv("APP_ENVIRONMENT", "production")
    assert GatewaySettings().port == 6001
    generation = GenerationSettings()
    assert generation.port != 6001
    assert generation.model_id == "other-model"
    assert generation.model.device == "cpu"
    assert generation.app.environment == "production"


def test_env_example_documents_every_variable():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    expected = set().union(*(env_names(cls) for cls in SETTINGS_CLASSES))
    assert expected - documented == set()
    assert documented - expected == set()


def test_env_example_loads_as_a_dotenv_file_and_matches_the_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    defaults = {cls: cls().model_dump() for cls in SETTINGS_CLASSES}
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    for cls in SETTINGS_CLASSES:
        assert cls().model_dump() == defaults[cls], cls.__name__
    edited = (ROOT / ".env.example").read_text().replace("GATEWAY_PORT=50051", "GATEWAY_PORT=50999")
    (tmp_path / ".env").write_text(edited)
    assert GatewaySettings().port == 50999  # the file really is read
