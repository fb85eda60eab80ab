"""The committed stubs match the protos, and the public API carries every Part B route."""
from __future__ import annotations

from google.api import annotations_pb2

from libs import protogen
from medai.gateway.v1 import gateway_pb2

PART_B_ROUTES = {
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/models"),
    ("get", "/models/{model_id}/info"),
    ("get", "/models/{model_id}/health"),
    ("post", "/models/{model_id}/predict"),
    ("post", "/models/{model_id}/predict:stream"),
    ("post", "/v1/deidentify"),
}


def test_committed_stubs_do_not_drift_from_protos():
    assert protogen.drift() == []


def test_gateway_annotates_every_part_b_route():
    service = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]
    routes = set()
    for method in service.methods:
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        kind = rule.WhichOneof("pattern")
        routes.add((kind, getattr(rule, kind)))
    assert routes >= PART_B_ROUTES


def test_stream_route_is_server_streaming():
    method = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].methods_by_name["PredictStream"]
    assert method.server_streaming and not method.client_streaming
