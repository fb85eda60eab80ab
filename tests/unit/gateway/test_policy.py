"""Gateway policy: authentication, the role x route x model matrix, validation, admission, deadlines."""
from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from libs.errors import InvalidInput, ModelNotFound, Overloaded, PermissionDenied, Unauthenticated
from libs.validation import GenerationParams
from services.gateway.core.model import PredictCall
from tests.unit.gateway.conftest import MODELS, DownMonitor, build_gateway, meta

ROLES = ("admin", "clinician", "researcher", "auditor", "service")


def predict(model_id: str, inputs="chest pain", **params) -> PredictCall:
    return PredictCall(model_id=model_id, inputs=inputs, params=GenerationParams(**params))


async def call_route(gateway, route: str, key: str, model_id: str):
    """Invoke one route the way its servicer would."""
    actions = {
        "list_models": lambda: gateway.list_models(meta(key), ""),
        "model_info": lambda: gateway.model_info(meta(key), model_id),
        "predict": lambda: gateway.predict(meta(key), predict(model_id)),
        "predict_stream": lambda: _drain(gateway.predict_stream(meta(key), predict(model_id))),
        "deidentify": lambda: gateway.deidentify(meta(key), "Jane Roe"),
        "delete_session": lambda: gateway.delete_session(meta(key), model_id, "s1"),
        "audit_read": lambda: gateway.list_audit_records(meta(key), None),
        "audit_verify": lambda: gateway.verify_audit(meta(key)),
        "alerts": lambda: gateway.alerts(meta(key)),
        "system": lambda: gateway.system_metrics(meta(key)),
    }
    return await actions[route]()


async def _drain(stream):
    return [chunk async for chunk in stream]


# Which (route, model type) each role may call; everything else must be PERMISSION_DENIED.
ALLOWED = {
    "admin": {"*"},
    "clinician": {("list_models", "*"), ("model_info", "*"), ("predict", "text-generation"),
                  ("predict", "conversation"), ("predict_stream", "text-generation"),
                  ("predict_stream", "conversation"), ("delete_session", "conversation")},
    "researcher": {("list_models", "*"), ("model_info", "*"), ("predict", "text-generation"),
                   ("predict", "embedding"), ("deidentify", "*")},
    "auditor": {("audit_read", "*"), ("audit_verify", "*"), ("alerts", "*"), ("system", "*")},
    "service": {("list_models", "*"), ("model_info", "*"), ("predict", "text-generation"), ("predict", "embedding"),
                ("predict", "conversation"), ("predict_stream", "text-generation"),
                ("predict_stream", "conversation"), ("predict_stream", "embedding"),
                ("delete_session", "conversation")},
}
MODEL_ROUTES = ("model_info", "predict", "predict_stream", "delete_session")
OTHER_ROUTES = ("list_models", "deidentify", "audit_read", "audit_verify", "alerts", "system")
MATRIX = [
    (role, route, model) for role in ROLES for route in MODEL_ROUTES for model in MODELS
    if route != "delete_session" or MODELS[model] == "conversation"
] + [(role, route, "gen-1") for role in ROLES for route in OTHER_ROUTES]


def allowed(role: str, route: str, model_id: str) -> bool:
    rules = ALLOWED[role]
    model_type = MODELS[model_id] if route in MODEL_ROUTES else "*"
    return "*" in rules or (route, model_type) in rules or (route, "*") in rules


@pytest.mark.parametrize(("role", "route", "model_id"), MATRIX)
async def test_role_route_model_matrix(key_store, compliance, role, route, model_id):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role=role)
    if allowed(role, route, model_id):
        await call_route(gateway, route, key, model_id)
    else:
        with pytest.raises(PermissionDenied, match=r"lacks permission|may not"):
            await call_route(gateway, route, key, model_id)


async def test_service_key_is_limited_to_its_models(key_store, compliance):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="service", models=("gen-1",))
    await gateway.predict(meta(key), predict("gen-1"))
    with pytest.raises(PermissionDenied, match="may not use model 'chat-1'"):
        await gateway.predict(meta(key), predict("chat-1"))
    assert [r["model_id"] for r in await gateway.list_models(meta(key), "")] == ["gen-1"]


@pytest.mark.parametrize("authorization", [None, "", "Bearer ", "Basic abc", "Bearer msk_000000000000_nope"])
async def test_missing_or_unknown_key_is_unauthenticated(key_store, compliance, authorization):
    gateway = build_gateway(key_store, compliance)
    with pytest.raises(Unauthenticated):
        await gateway.predict(meta(None).__class__(authorization, "r", "a", None), predict("gen-1"))
    assert compliance.calls == []


async def test_revoked_key_is_refused_after_the_cache_ttl(key_store, compliance):
    gateway = build_gateway(key_store, compliance, key_ttl=0.3)
    key_row, key = await key_store.create(name="t", role="admin")
    await gateway.predict(meta(key), predict("gen-1"))
    await key_store.revoke(key_row.key_id)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            await gateway.predict(meta(key), predict("gen-1"))
        except Unauthenticated:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("revoked key still accepted after 5 s")


async def refused_within(gateway, key: str, seconds: float) -> bool:
    """Whether the key is refused (UNAUTHENTICATED) before `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            await gateway.list_models(meta(key), "")
        except Unauthenticated:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_revoked_key_is_refused_on_every_replica(key_store, compliance):
    replicas = [build_gateway(key_store, compliance, key_ttl=1.0) for _ in range(2)]
    key_row, key = await key_store.create(name="t", role="admin")
    for gateway in replicas:
        await gateway.list_models(meta(key), "")  # each replica has the key cached now
    await key_store.revoke(key_row.key_id)
    assert [await refused_within(gateway, key, 5) for gateway in replicas] == [True, True]


async def test_expired_key_is_refused(key_store, compliance):
    gateway = build_gateway(key_store, compliance, key_ttl=1.0)
    _, expired = await key_store.create(name="t", role="admin", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(Unauthenticated):
        await gateway.list_models(meta(expired), "")
    _, expiring = await key_store.create(name="t", role="admin",
                                         expires_at=datetime.now(UTC) + timedelta(milliseconds=300))
    await gateway.list_models(meta(expiring), "")  # valid now, and cached
    assert await refused_within(gateway, expiring, 5)


async def test_unknown_model_is_not_found(key_store, compliance):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    with pytest.raises(ModelNotFound):
        await gateway.predict(meta(key), predict("nope"))


@pytest.mark.parametrize(("call", "field"), [
    (predict("gen-1", inputs=None), "inputs"),
    (predict("gen-1", inputs=7), "inputs"),
    (predict("gen-1", inputs=[]), "inputs"),
    (predict("gen-1", inputs=["ok", 3]), "inputs[1]"),
    (predict("gen-1", inputs=["a"] * 5), "inputs"),
    (predict("gen-1", inputs="x" * 101), "inputs"),
    (predict("gen-1", temperature=9.0), "parameters.temperature"),
    (predict("gen-1", top_p=0.0), "parameters.top_p"),
    (predict("gen-1", max_new_tokens=0), "parameters.max_new_tokens"),
    (predict("gen-1", repetition_penalty=0.0), "parameters.repetition_penalty"),
    (predict("gen-1", stop=("a", "b", "c", "d", "e")), "parameters.stop"),
])
async def test_invalid_requests_name_the_field_and_do_no_work(key_store, compliance, call, field):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    with pytest.raises(InvalidInput) as raised:
        await gateway.predict(meta(key), call)
    assert raised.value.message.startswith(f"{field}:")
    assert compliance.calls == []


async def test_sessions_exist_only_on_conversation_models(key_store, compliance):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    with pytest.raises(InvalidInput, match=r"^model_id:"):
        await gateway.delete_session(meta(key), "gen-1", "s1")


async def test_stream_needs_a_single_string(key_store, compliance):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    with pytest.raises(InvalidInput, match=r"^inputs:"):
        await _drain(gateway.predict_stream(meta(key), predict("gen-1", inputs=["a", "b"])))


async def test_admission_control_refuses_beyond_max_in_flight(key_store, compliance):
    gateway = build_gateway(key_store, compliance, max_in_flight=1)
    _, key = await key_store.create(name="t", role="admin")
    stream = gateway.predict_stream(meta(key), predict("gen-1"))
    await stream.__anext__()  # one call in flight
    with pytest.raises(Overloaded):
        await gateway.predict(meta(key), predict("gen-1"))
    await stream.aclose()
    await gateway.predict(meta(key), predict("gen-1"))  # slot freed


async def test_deadline_passed_downstream_is_the_client_remaining_time_less_a_margin(key_store, compliance):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    await gateway.predict(meta(key, deadline=2.5), predict("gen-1"))
    await gateway.predict(meta(key, deadline=500.0), predict("gen-1"))  # honoured, not cut to the default
    await _drain(gateway.predict_stream(meta(key, deadline=3.5), predict("chat-1")))
    timeouts = [args[2] for name, args in compliance.calls if name.startswith("predict")]
    assert timeouts == [2.25, 499.75, 3.25]  # the gateway keeps a moment to answer (or end a stream) itself


@pytest.mark.parametrize(("model_id", "expected"), [("gen-1", 60.0), ("emb-1", 7.0), ("chat-1", 30.0)])
async def test_without_a_client_deadline_the_model_type_default_applies(key_store, compliance, model_id, expected):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    await gateway.predict(meta(key), predict(model_id))
    assert compliance.calls[-1][1][2] == expected


async def test_caller_identity_is_forwarded(key_store, compliance):
    gateway = build_gateway(key_store, compliance)
    row, key = await key_store.create(name="ward app", role="clinician")
    await gateway.predict(meta(key), predict("gen-1"))
    caller = compliance.calls[0][1][0]
    assert (caller.request_id, caller.principal.key_id, caller.principal.role, caller.client_address) == (
        "req-1", row.key_id, "clinician", "10.0.0.9")


async def test_health_without_monitor_is_degraded_not_an_error(key_store, compliance):
    gateway = build_gateway(key_store, compliance, DownMonitor())
    health = await gateway.health()
    assert health.status == "DEGRADED"
    assert health.services["gateway"].status == "SERVING"
    assert health.services["monitor"].status == "UNKNOWN"


async def test_catalog_is_cached(key_store, compliance):
    gateway = build_gateway(key_store, compliance)
    _, key = await key_store.create(name="t", role="admin")
    for _ in range(5):
        await gateway.predict(meta(key), predict("gen-1"))
    assert compliance.list_calls == 1
