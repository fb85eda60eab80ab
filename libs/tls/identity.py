"""The mesh's identities and how a certificate names one.

A certificate names its identity in one URI SAN, the SPIFFE ID `spiffe://<trust domain>/<identity>`:
servers authorise callers by it. Its DNS SANs are the names clients verify when they dial it: the
identity itself (every client sets the name it expects, whatever address it dials) and, for the model
workers, `worker`: compliance dials worker addresses whose identity it does not know beforehand (the
catalogue tells it which models answer there), so it verifies that a worker answers.
"""
from __future__ import annotations

from collections.abc import Iterable

SPIFFE_SCHEME = "spiffe://"
WORKER_NAME = "worker"

# Identity -> the extra DNS names its certificate carries (besides the identity). `prometheus` is the
# scraper of compose and Kubernetes (metrics only); `edge` is not a mesh identity (see EDGE_NAMES).
MESH_IDENTITIES: dict[str, tuple[str, ...]] = {
    "envoy": (),
    "gateway": (),
    "compliance": (),
    "generation": (WORKER_NAME,),
    "embedding": (WORKER_NAME,),
    "conversation": (WORKER_NAME,),
    "monitor": (),
    "prometheus": (),
}
# The development certificate of Envoy's public TLS listener (ENVOY_TLS_CERT_FILE): a server name a
# local client dials. Production uses a certificate from a public or corporate CA instead.
EDGE_CERT = "edge"
EDGE_NAMES = ("localhost", "envoy")
EDGE_ADDRESSES = ("127.0.0.1", "::1")


def spiffe_id(trust_domain: str, identity: str) -> str:
    return f"{SPIFFE_SCHEME}{trust_domain}/{identity}"


def dns_names(identity: str) -> list[str]:
    """The DNS SANs of an identity's certificate."""
    return [identity, *MESH_IDENTITIES.get(identity, ())]


def identity_of(sans: Iterable[str], trust_domain: str) -> str | None:
    """The identity named by the one SPIFFE ID of this trust domain among a certificate's SANs, else None."""
    prefix = spiffe_id(trust_domain, "")
    found = {san.removeprefix(prefix) for san in sans if san.startswith(prefix)}
    if len(found) != 1:
        return None
    (identity,) = found
    return identity if identity and "/" not in identity else None
