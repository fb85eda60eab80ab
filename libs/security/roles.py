"""Roles and permissions as data: which permission each role holds and each route needs."""
from __future__ import annotations

from enum import StrEnum

from libs.catalog import CONVERSATION, EMBEDDING, TEXT_GENERATION


class Permission(StrEnum):
    MODELS_READ = "models:read"
    PREDICT = "predict"
    STREAM = "stream"
    EMBEDDINGS = "embeddings"
    CONVERSATION = "conversation"
    PHI_DEIDENTIFY = "phi:deidentify"
    PHI_REIDENTIFY = "phi:reidentify"
    AUDIT_READ = "audit:read"
    AUDIT_VERIFY = "audit:verify"
    MONITORING_READ = "monitoring:read"  # the monitor's alerts and system metrics


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "clinician": frozenset({
        Permission.MODELS_READ, Permission.PREDICT, Permission.STREAM, Permission.CONVERSATION,
        Permission.PHI_REIDENTIFY,
    }),
    "researcher": frozenset({
        Permission.MODELS_READ, Permission.PREDICT, Permission.EMBEDDINGS, Permission.PHI_DEIDENTIFY,
    }),
    "auditor": frozenset({Permission.AUDIT_READ, Permission.AUDIT_VERIFY, Permission.MONITORING_READ}),
    # Machine clients: what they may call is further limited by the key's model allow-list.
    "service": frozenset({
        Permission.MODELS_READ, Permission.PREDICT, Permission.STREAM, Permission.EMBEDDINGS,
        Permission.CONVERSATION,
    }),
}

# The permission a model type needs on top of the route's own.
MODEL_TYPE_PERMISSION: dict[str, Permission] = {
    TEXT_GENERATION: Permission.PREDICT,
    EMBEDDING: Permission.EMBEDDINGS,
    CONVERSATION: Permission.CONVERSATION,
}


def permissions_of(role: str) -> frozenset[Permission]:
    return ROLE_PERMISSIONS.get(role, frozenset())
