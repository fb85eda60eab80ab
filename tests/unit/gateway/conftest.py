"""A gateway over a real key store (SQLite), in front of a recording compliance port."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from libs.catalog import ModelLimits
from libs.errors import NotReady
from libs.stores.db import open_database
from libs.stores.keys import KeyStore
from services.gateway.core.auth import Authenticator, KeyCachePolicy
from services.gateway.core.catalog import ModelCatalog
from services.gateway.core.gateway import Gateway, GatewayLimits
from services.gateway.core.model import CallMetadata, CatalogEntry, MeshHealth, ServiceStatus
from services.gateway.core.quota import Quotas

MODELS = {"gen-1": "text-generation", "emb-1": "embedding", "chat-1": "conversation"}


# What each model accepts (as a worker reports it in its catalogue entry).
LIMITS = {
    "gen-1": ModelLimits(max_input_tokens=20, max_new_tokens=64),
    "emb-1": ModelLimits(max_input_tokens=10, max_batch_size=3),
    "chat-1": ModelLimits(max_input_tokens=20, max_new_tokens=64),
}


@dataclass
class RecordingCompliance:
    """Stands in for the compliance service behind the gateway port: answers and records each call.

    Replies are dicts; `tokens` is what a predict answer says it generated, and a stream sends
    `stream_texts` then a last chunk with usage (unless `stream_usage` is None)."""

    calls: list[tuple[str, object]] = field(default_factory=list)
    list_calls: int = 0
    tokens: int = 5
    cached: bool = False
    stream_texts: tuple[str, ...] = ("a", "b")
    stream_usage: int | None = 2

    async def list_models(self, timeout):
        self.list_calls += 1
        return [CatalogEntry(model_id, model_type, {"model_id": model_id}, LIMITS[model_id])
                for model_id, model_type in MODELS.items()]

    async def model_health(self, model_id, timeout):
        self.calls.append(("model_health", model_id))
        return {"model_id": model_id, "status": "SERVING"}

    async def predict(self, caller, call, timeout):
        self.calls.append(("predict", (caller, call, timeout)))
        return {"outputs": "ok", "tokens": self.tokens, "cached": self.cached}

    async def predict_stream(self, caller, call, timeout):
        self.calls.append(("predict_stream", (caller, call, timeout)))
        for text in self.stream_texts:
            yield {"text": text}
        if self.stream_usage is not None:
            yield {"text": "", "usage": self.stream_usage}

    def generated_tokens(self, reply):
        if "usage" in reply:
            return reply["usage"]
        if "tokens" in reply:
            return 0 if reply["cached"] else reply["tokens"]
        return None

    async def deidentify(self, caller, text, timeout):
        self.calls.append(("deidentify", caller))
        return {"redacted_text": "[PERSON_1]"}

    async def delete_session(self, caller, model_id, session_id, timeout):
        self.calls.append(("delete_session", (model_id, session_id)))
        return {"deleted": True}

    async def list_audit_records(self, caller, query, timeout):
        self.calls.append(("list_audit_records", caller))
        return {"records": []}

    async def verify_audit(self, caller, timeout):
        self.calls.append(("verify_audit", caller))
        return {"intact": True}


class DownMonitor:
    async def mesh_health(self, timeout):
        raise NotReady("monitor unreachable")

    async def mesh_metrics(self, timeout):
        raise NotReady("monitor unreachable")


class UpMonitor:
    async def mesh_health(self, timeout):
        return MeshHealth("SERVING", {"gateway": ServiceStatus("SERVING", 1.0)})

    async def mesh_metrics(self, timeout):
        return "medai_up 1\n"

    async def alerts(self, timeout):
        return {"alerts": []}

    async def system_metrics(self, timeout):
        return {"cpu_percent": 1.0}


@pytest.fixture
async def key_store(tmp_path):
    db = await open_database(f"sqlite:///{tmp_path / 'keys.db'}")
    store = KeyStore(db, b"gateway-test")
    await store.migrate()
    yield store
    await db.close()


@pytest.fixture
def compliance():
    return RecordingCompliance()


def build_gateway(key_store, compliance, monitor=None, *, key_ttl=0.0, max_in_flight=8,
                  quotas: Quotas | None = None, role_limits=None, refusals=None, stale_seconds=0.0) -> Gateway:
    limits = GatewayLimits(max_in_flight=max_in_flight, default_deadline_seconds=30.0, max_inputs=4,
                           max_input_chars=100, max_request_bytes=2048,
                           model_type_deadlines={"embedding": 7.0, "text-generation": 60.0})
    authenticator = Authenticator(key_store, KeyCachePolicy(key_ttl, stale_seconds), role_limits=role_limits)
    return Gateway(authenticator, ModelCatalog(compliance, 60.0), compliance,
                   monitor or UpMonitor(), limits, ServiceStatus("SERVING", 0.0), quotas, refusals)


def meta(plaintext: str | None, deadline: float | None = None) -> CallMetadata:
    return CallMetadata(f"Bearer {plaintext}" if plaintext else None, "req-1", "10.0.0.9", deadline)
