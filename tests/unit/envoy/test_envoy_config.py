"""The Envoy bootstrap rendered from settings: accepted by the real binary, and shaped as intended."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from libs.config import EnvoySettings, TelemetrySettings
from libs.envoy import __main__ as launcher
from libs.envoy import envoy_binary, render_config, write_config
from libs.envoy.config import ACCESS_LOG_FIELDS, split_address
from tests.support.ports import free_ports

NO_TELEMETRY = TelemetrySettings(exporter_otlp_endpoint=None, exporter_otlp_traces_endpoint=None, sdk_disabled=False)
TELEMETRY_ON = TelemetrySettings(exporter_otlp_endpoint="http://collector.example:4317", sdk_disabled=False)


def settings(**overrides: Any) -> EnvoySettings:
    values: dict[str, Any] = {"cors_origins": [], "telemetry": NO_TELEMETRY, "local_rate_limit_per_second": 1000,
                              "gateway_address": "127.0.0.1:50051", **overrides}
    return EnvoySettings(**values)


def http_filters(config: dict[str, Any]) -> list[dict[str, Any]]:
    return _manager(config)["http_filters"]


def _manager(config: dict[str, Any]) -> dict[str, Any]:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def _cluster(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in config["static_resources"]["clusters"] if c["name"] == name)


@pytest.mark.parametrize("overrides", [
    {},
    {"cors_origins": ["https://ehr.example.org", "http://localhost:3000"], "telemetry": TELEMETRY_ON},
], ids=["defaults", "cors-and-tracing"])
def test_envoy_validates_the_rendered_config(tmp_path: Path, overrides: dict[str, Any]) -> None:
    path = write_config(settings(**overrides), path=tmp_path / "envoy.json")

    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--base-id", str(free_ports(1)[0])],
        capture_output=True, text=True, timeout=60, check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()


def test_default_listener_and_admin_addresses() -> None:
    config = render_config(settings())

    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert (listener["address"], listener["port_value"]) == ("127.0.0.1", 8080)
    assert config["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9901}
    assert _manager(config)["codec_type"] == "AUTO"


def test_cors_is_off_without_origins_and_exact_with_them() -> None:
    off = render_config(settings())
    on = render_config(settings(cors_origins=["https://ehr.example.org"]))

    assert "envoy.filters.http.cors" not in [f["name"] for f in http_filters(off)]
    # Readiness first (answered by Envoy itself), then CORS before anything counts or reads the request.
    assert [f["name"] for f in http_filters(on)][:2] == ["envoy.filters.http.health_check", "envoy.filters.http.cors"]
    policy = _manager(on)["route_config"]["virtual_hosts"][0]["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert policy["allow_origin_string_match"] == [{"exact": "https://ehr.example.org"}]


def test_tracing_and_collector_only_when_exporting() -> None:
    off = render_config(settings())
    on = render_config(settings(telemetry=TELEMETRY_ON))

    assert "tracing" not in _manager(off)
    assert [c["name"] for c in off["static_resources"]["clusters"]] == ["gateway"]
    assert _manager(on)["tracing"]["provider"]["name"] == "envoy.tracers.opentelemetry"
    collector = _cluster(on, "otel_collector")["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert collector["endpoint"]["address"]["socket_address"] == {"address": "collector.example", "port_value": 4317}


def test_rate_limit_body_limit_and_route_timeout_follow_settings() -> None:
    config = render_config(settings(local_rate_limit_per_second=7, max_request_bytes=4096, route_timeout_seconds=90))

    filters = {f["name"]: f["typed_config"] for f in http_filters(config)}
    bucket = filters["envoy.filters.http.local_ratelimit"]["token_bucket"]
    assert (bucket["max_tokens"], bucket["tokens_per_fill"], bucket["fill_interval"]) == (7, 7, "1s")
    hint = filters["envoy.filters.http.local_ratelimit"]["response_headers_to_add"][0]["header"]
    assert hint == {"key": "retry-after", "value": "1"}
    assert filters["envoy.filters.http.buffer"]["max_request_bytes"] == 4096
    routes = _manager(config)["route_config"]["virtual_hosts"][0]["routes"]
    assert {r["route"]["timeout"] for r in routes if "route" in r} == {"90s"}
    assert _manager(config)["stream_idle_timeout"] == "90s"


def test_gateway_cluster_speaks_http2_to_the_configured_address() -> None:
    cluster = _cluster(render_config(settings(gateway_address="gateway.medai.svc:50051")), "gateway")

    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "gateway.medai.svc", "port_value": 50051}
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]
    assert "outlier_detection" in cluster and "circuit_breakers" in cluster


def test_access_log_never_formats_bodies_or_raw_paths() -> None:
    formats = " ".join(ACCESS_LOG_FIELDS.values())

    assert "BODY" not in formats.upper()
    assert "%REQ(:PATH)%" not in formats
    assert "REQ_WITHOUT_QUERY" in ACCESS_LOG_FIELDS["path"]


@pytest.mark.parametrize(("address", "expected"), [
    ("127.0.0.1:50051", ("127.0.0.1", 50051)),
    ("gateway:50051", ("gateway", 50051)),
    ("http://jaeger:4317", ("jaeger", 4317)),
    ("[::1]:8443", ("::1", 8443)),
])
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["gateway", ":50051", ""])
def test_split_address_refuses_incomplete_addresses(address: str) -> None:
    with pytest.raises(ValueError):
        split_address(address)


def test_split_address_falls_back_to_the_default_port() -> None:
    assert split_address("http://jaeger", 4317) == ("jaeger", 4317)


def test_write_config_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "envoy.json"

    written = write_config(settings(), path=target)

    assert written == target
    assert json.loads(target.read_text()) == render_config(settings())


def test_launcher_renders_then_execs_envoy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_path = tmp_path / "state" / "envoy.json"
    monkeypatch.setenv("ENVOY_CONFIG_PATH", str(config_path))
    monkeypatch.setenv("ENVOY_BASE_ID", "17")
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(launcher.os, "execv", lambda path, argv: calls.append((path, argv)))

    launcher.main()

    [(path, argv)] = calls
    assert path == envoy_binary() == argv[0]
    assert argv[argv.index("-c") + 1] == str(config_path)
    assert argv[argv.index("--base-id") + 1] == "17"
    assert argv[argv.index("--log-level") + 1] == "warn"
    assert json.loads(config_path.read_text())["static_resources"]["listeners"]
