"""JSON logs carry service, request_id and trace_id on every line."""
from __future__ import annotations

import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from libs.logs import configure_logging
from libs.rpc.context import request_id_var


def test_log_lines_are_json_with_call_ids(capsys):
    configure_logging("gateway", "INFO")
    tracer = TracerProvider().get_tracer("test")
    token = request_id_var.set("req-123")
    try:
        with tracer.start_as_current_span("call") as span:
            logging.getLogger("services.gateway").info("forwarded", extra={"model_id": "m1"})
            trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        request_id_var.reset(token)
        logging.getLogger().handlers.clear()
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "forwarded"
    assert (line["service"], line["request_id"], line["trace_id"], line["model_id"]) == (
        "gateway", "req-123", trace_id, "m1")
    assert line["level"] == "INFO"
