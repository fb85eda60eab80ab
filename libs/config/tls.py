"""`TLS_*`: mutual TLS between the mesh's processes (on by default, `make run` included).

Every process has one identity (its service name; Envoy is `envoy`), carried in its certificate as
the URI SAN `spiffe://<trust_domain>/<identity>`. Servers require a client certificate from the mesh
CA and admit only the identities `allowed_callers` lists for them; clients verify the server's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from libs.config.base import env_config

# Who may call whom (callee -> callers), by identity. Health (grpc.health.v1) and metrics have their own
# lists below; a process may always ask its own health (the container's probe runs with its identity).
DEFAULT_ALLOWED_CALLERS: dict[str, list[str]] = {
    "gateway": ["envoy"],
    "compliance": ["gateway"],
    "generation": ["compliance"],
    "embedding": ["compliance"],
    "conversation": ["compliance"],
    "monitor": ["gateway"],
}
TLS_DIR_NAME = "tls"
CA_CERT_NAME = "ca.crt"


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of one identity: the CA bundle it trusts, its certificate (chain) and its key."""

    ca: Path
    cert: Path
    key: Path


class TlsSettings(BaseSettings):
    """`TLS_*`: certificate files, the trust domain and who may call whom."""

    model_config = env_config("TLS_")

    # false: plaintext gRPC and metrics (for tests of other concerns; never with real PHI).
    enabled: bool = True
    # Folder of the development CA and the certificates `medai certs dev` (and `make run`) create:
    # ca.crt, ca.key, <identity>.crt, <identity>.key. Empty: APP_STATE_DIR/tls.
    dir: Path | None = None
    # This process's own files (e.g. a mounted Kubernetes Secret: ca.crt, tls.crt, tls.key). Empty: the
    # files of its identity in `dir`.
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # The SPIFFE trust domain of the identities (URI SAN spiffe://<trust_domain>/<identity>).
    trust_domain: str = "medai.local"
    # Seconds between checks of the files for a replaced certificate (rotation without restart).
    reload_seconds: float = Field(default=5.0, gt=0)
    # Callee -> caller identities admitted to its gRPC services (see DEFAULT_ALLOWED_CALLERS).
    allowed_callers: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_ALLOWED_CALLERS))
    # Identities admitted to every service's grpc.health.v1 (besides the service itself).
    health_callers: list[str] = Field(default_factory=lambda: ["monitor"])
    # Identities admitted to every service's Prometheus endpoint (HTTPS with client certificates).
    metrics_callers: list[str] = Field(default_factory=lambda: ["monitor", "prometheus"])
    # Lifetime of the certificates `medai certs dev` issues (the development CA lives ten times longer).
    dev_cert_days: int = Field(default=90, ge=1)

    def folder(self, state_dir: Path) -> Path:
        return self.dir or state_dir / TLS_DIR_NAME

    def files(self, identity: str, state_dir: Path) -> TlsFiles:
        """The files of `identity` (explicit paths win over the folder's)."""
        folder = self.folder(state_dir)
        return TlsFiles(self.ca_file or folder / CA_CERT_NAME, self.cert_file or folder / f"{identity}.crt",
                        self.key_file or folder / f"{identity}.key")

    @property
    def uses_folder(self) -> bool:
        """True when no explicit file is set: the development folder (which `make run` fills) is used."""
        return not (self.ca_file or self.cert_file or self.key_file)

    def callers_of(self, identity: str) -> frozenset[str]:
        return frozenset(self.allowed_callers.get(identity, ()))
