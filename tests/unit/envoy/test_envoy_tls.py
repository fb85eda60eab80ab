"""Envoy's TLS: mutual TLS to the gateway, downstream TLS when the edge has a certificate, certificates by
file-based SDS; the real binary accepts every combination."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from libs.config import EnvoySettings, TelemetrySettings, TlsSettings
from libs.envoy import envoy_binary, render_config, write_config
from libs.envoy.tls import EDGE_ALPN, EDGE_CIPHER_SUITES, sds_dir
from tests.support.mesh_tls import dev_folder
from tests.support.ports import free_ports

NO_TELEMETRY = TelemetrySettings(exporter_otlp_endpoint=None, exporter_otlp_traces_endpoint=None, sdk_disabled=False)


def settings(tmp_path: Path, tls: bool = True, edge: bool = False, **overrides: Any) -> EnvoySettings:
    folder = tmp_path / "tls"
    values: dict[str, Any] = {
        "cors_origins": [], "telemetry": NO_TELEMETRY, "gateway_address": "127.0.0.1:50051",
        "config_path": tmp_path / "envoy.json",
        "tls": TlsSettings(enabled=tls, dir=folder, ca_file=None, cert_file=None, key_file=None),
        "tls_cert_file": folder / "edge.crt" if edge else None, "tls_key_file": folder / "edge.key" if edge else None,
        **overrides,
    }
    return EnvoySettings(**values)


def listeners(config: dict) -> dict[str, dict]:
    return {listener["name"]: listener for listener in config["static_resources"]["listeners"]}


def gateway_cluster(config: dict) -> dict:
    return next(c for c in config["static_resources"]["clusters"] if c["name"] == "gateway")


@pytest.mark.parametrize(("tls", "edge"), [(True, True), (True, False), (False, True)],
                         ids=["mtls-and-edge-tls", "mtls-only", "edge-tls-only"])
def test_envoy_validates_the_tls_configs(tmp_path: Path, tls: bool, edge: bool) -> None:
    dev_folder(tmp_path / "tls")
    path = write_config(settings(tmp_path, tls, edge))
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--base-id",
                             str(free_ports(1)[0])], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deprecated" not in (result.stdout + result.stderr).lower()


def test_the_gateway_is_called_over_mtls_and_must_be_the_gateway(tmp_path: Path) -> None:
    config = render_config(settings(tmp_path))
    socket = gateway_cluster(config)["transport_socket"]["typed_config"]
    assert socket["sni"] == "gateway"
    context = socket["common_tls_context"]
    assert context["alpn_protocols"] == ["h2"]
    assert context["tls_params"]["tls_minimum_protocol_version"] == "TLSv1_2"
    validation = context["combined_validation_context"]
    assert validation["default_validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "URI", "matcher": {"exact": "spiffe://medai.local/gateway"}}]
    assert [s["name"] for s in context["tls_certificate_sds_secret_configs"]] == ["mesh_identity"]


def test_sds_files_name_the_identity_files_and_the_watched_folder(tmp_path: Path) -> None:
    write_config(settings(tmp_path, edge=True))
    folder = sds_dir(settings(tmp_path))
    identity = json.loads((folder / "mesh_identity.json").read_text())["resources"][0]
    assert identity["tls_certificate"] == {
        "certificate_chain": {"filename": str(tmp_path / "tls" / "envoy.crt")},
        "private_key": {"filename": str(tmp_path / "tls" / "envoy.key")},
        "watched_directory": {"path": str(tmp_path / "tls")},
    }
    ca = json.loads((folder / "mesh_ca.json").read_text())["resources"][0]
    assert ca["validation_context"]["trusted_ca"] == {"filename": str(tmp_path / "tls" / "ca.crt")}
    edge = json.loads((folder / "edge_certificate.json").read_text())["resources"][0]
    assert edge["tls_certificate"]["certificate_chain"] == {"filename": str(tmp_path / "tls" / "edge.crt")}


def test_without_mesh_tls_the_gateway_is_called_in_plaintext(tmp_path: Path) -> None:
    config = render_config(settings(tmp_path, tls=False))
    assert "transport_socket" not in gateway_cluster(config)
    assert list(listeners(config)) == ["edge"]


def test_the_plain_listener_stays_and_a_tls_one_joins_with_an_edge_certificate(tmp_path: Path) -> None:
    config = render_config(settings(tmp_path, edge=True, tls_host="0.0.0.0", tls_port=9443))
    found = listeners(config)
    assert list(found) == ["edge", "edge_tls"]
    assert found["edge"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    assert "transport_socket" not in found["edge"]["filter_chains"][0]
    assert found["edge_tls"]["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 9443}
    chain = found["edge_tls"]["filter_chains"][0]
    context = chain["transport_socket"]["typed_config"]["common_tls_context"]
    assert context["alpn_protocols"] == EDGE_ALPN == ["h2", "http/1.1"]
    assert context["tls_params"]["tls_minimum_protocol_version"] == "TLSv1_2"
    assert context["tls_params"]["cipher_suites"] == EDGE_CIPHER_SUITES
    assert all(suite.startswith("ECDHE-") and ("GCM" in suite or "CHACHA20" in suite) for suite in EDGE_CIPHER_SUITES)
    # The same routes, filters and limits on both.
    plain_manager = found["edge"]["filter_chains"][0]["filters"][0]["typed_config"]
    tls_manager = chain["filters"][0]["typed_config"]
    assert {**plain_manager, "stat_prefix": "x"} == {**tls_manager, "stat_prefix": "x"}
