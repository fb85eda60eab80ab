"""Mutual TLS inside the mesh: identities, the development CA, certificate files re-read on change."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from libs.config.tls import TlsSettings
from libs.tls.material import CertificateSource, certificate_source


@dataclass(frozen=True)
class MeshTls:
    """What one process needs for mesh TLS: its identity, its certificate source and the policy settings."""

    identity: str
    settings: TlsSettings
    source: CertificateSource

    @property
    def trust_domain(self) -> str:
        return self.settings.trust_domain


def mesh_tls(tls: TlsSettings, identity: str, state_dir: Path) -> MeshTls | None:
    """The process's mesh TLS, or None when TLS_ENABLED is false (CertificateError when files are unusable)."""
    if not tls.enabled:
        return None
    files = tls.files(identity, state_dir)
    return MeshTls(identity, tls, certificate_source(identity, files, tls.reload_seconds))
