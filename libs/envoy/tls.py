"""Envoy's TLS: mutual TLS to the gateway (identity `envoy`), and downstream TLS for clients when
ENVOY_TLS_CERT_FILE / ENVOY_TLS_KEY_FILE are set.

Certificates reach Envoy through file-based SDS: a small secret file per certificate (written beside the
bootstrap) names the PEM files and the directory Envoy watches; when a file there is replaced (renamed
over, as `medai certs` and Kubernetes' Secret volumes do), Envoy reads the pair again and uses it for new
connections, without a restart.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from libs.config import EnvoySettings
from libs.tls.identity import spiffe_id

Json = dict[str, Any]
_TYPE = "type.googleapis.com/envoy."
SECRET_TYPE = f"{_TYPE}extensions.transport_sockets.tls.v3.Secret"
IDENTITY = "envoy"
MESH_CERT_SECRET = "mesh_identity"
MESH_CA_SECRET = "mesh_ca"
EDGE_CERT_SECRET = "edge_certificate"
UPSTREAM_SERVER_NAME = "gateway"
# Clients of the edge: TLS 1.2 with forward-secret AEAD suites only, or TLS 1.3 (all of whose suites are).
EDGE_CIPHER_SUITES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
]
EDGE_CURVES = ["X25519", "P-256"]
EDGE_ALPN = ["h2", "http/1.1"]


def sds_dir(settings: EnvoySettings) -> Path:
    return settings.config_path.parent.absolute() / "envoy-sds"


def _sds_config(settings: EnvoySettings, secret: str) -> Json:
    return {"name": secret, "sds_config": {
        "path_config_source": {"path": str(sds_dir(settings) / f"{secret}.json")},
        "resource_api_version": "V3",
    }}


def _tls_certificate(cert: Path, key: Path) -> Json:
    cert, key = cert.absolute(), key.absolute()
    return {"certificate_chain": {"filename": str(cert)}, "private_key": {"filename": str(key)},
            "watched_directory": {"path": str(cert.parent)}}


def sds_secrets(settings: EnvoySettings) -> dict[str, Json]:
    """Secret name -> its SDS resource (the mesh's certificate and CA; the edge's certificate when set)."""
    secrets: dict[str, Json] = {}
    if settings.tls.enabled:
        files = settings.tls.files(IDENTITY, settings.app.state_dir)
        ca = files.ca.absolute()
        secrets[MESH_CERT_SECRET] = {"tls_certificate": _tls_certificate(files.cert, files.key)}
        secrets[MESH_CA_SECRET] = {"validation_context": {"trusted_ca": {"filename": str(ca)},
                                                          "watched_directory": {"path": str(ca.parent)}}}
    if settings.downstream_tls:
        secrets[EDGE_CERT_SECRET] = {"tls_certificate": _tls_certificate(settings.tls_cert_file, settings.tls_key_file)}
    return secrets


def write_sds_files(settings: EnvoySettings) -> list[Path]:
    """Write each SDS secret file (atomically) where the bootstrap expects it."""
    folder = sds_dir(settings)
    written = []
    for name, secret in sds_secrets(settings).items():
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"resources": [{"@type": SECRET_TYPE, "name": name, **secret}]}, indent=2))
        temporary.replace(path)
        written.append(path)
    return written


def mesh_validation(settings: EnvoySettings, identities: list[str]) -> Json:
    """Trust the mesh CA, and accept only certificates naming one of these identities."""
    return {
        "default_validation_context": {"match_typed_subject_alt_names": [
            {"san_type": "URI", "matcher": {"exact": spiffe_id(settings.tls.trust_domain, identity)}}
            for identity in identities
        ]},
        "validation_context_sds_secret_config": _sds_config(settings, MESH_CA_SECRET),
    }


def upstream_tls(settings: EnvoySettings) -> Json:
    """The gateway cluster's transport socket: Envoy's certificate out, the gateway's identity verified."""
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": f"{_TYPE}extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": UPSTREAM_SERVER_NAME,
        "common_tls_context": {
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
            "alpn_protocols": ["h2"],
            "tls_certificate_sds_secret_configs": [_sds_config(settings, MESH_CERT_SECRET)],
            "combined_validation_context": mesh_validation(settings, [UPSTREAM_SERVER_NAME]),
        },
    }}


def downstream_tls(settings: EnvoySettings, secret: str = EDGE_CERT_SECRET, *,
                   client_identities: list[str] | None = None) -> Json:
    """A listener's transport socket: HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2+ with modern ciphers. With
    client_identities, a client certificate of the mesh naming one of them is required (stats listener)."""
    context: Json = {
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3",
                       "cipher_suites": EDGE_CIPHER_SUITES, "ecdh_curves": EDGE_CURVES},
        "alpn_protocols": EDGE_ALPN,
        "tls_certificate_sds_secret_configs": [_sds_config(settings, secret)],
    }
    typed: Json = {"@type": f"{_TYPE}extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                   "common_tls_context": context}
    if client_identities:
        context["combined_validation_context"] = mesh_validation(settings, client_identities)
        typed["require_client_certificate"] = True
    return {"name": "envoy.transport_sockets.tls", "typed_config": typed}
