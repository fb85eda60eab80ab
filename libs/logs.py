"""JSON structured logging: one object per line with service, request_id and trace_id.

Payloads are never logged: log calls pass ids, counts, sizes and durations only.
"""
from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from libs.rpc.context import current_request_id

# Libraries that log request content or chatter at INFO.
_QUIET_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "transformers", "sentence_transformers", "httpx",
                  "urllib3", "filelock", "huggingface_hub", "tldextract")


class _CallContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = current_request_id()
        span_context = trace.get_current_span().get_span_context()
        record.trace_id = format(span_context.trace_id, "032x") if span_context.is_valid else ""
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every log record to stderr as JSON, tagged with the current call's ids."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{service}{request_id}{trace_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_CallContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
