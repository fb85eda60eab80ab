"""JSON structured logging: one object per line with service, request_id and trace_id.

Payloads are never logged: log calls pass ids, counts, sizes and durations only.

Every process logs to stderr (what containers collect). With `APP_LOG_DIR` it also writes the
seed's log files there, JSON lines rotated by size (`APP_LOG_MAX_BYTES`, keeping
`APP_LOG_BACKUP_COUNT` old files; Python's RotatingFileHandler):

- serving.log: every record of every service; error.log: WARNING and up;
- access.log: Envoy's access log; audit.log: one PHI-free line per audit record (compliance).

A rotating file must have one writer (a second process would keep writing to the renamed file).
A lone process (a container) writes serving.log and error.log itself. Under `make run` the
services share the folder, so they only log to stderr and the launcher, their one parent,
writes both files from their collected output (`APP_LOG_COLLECTED`, see libs.launcher.logfiles);
Envoy writes access.log and the launcher rotates it (libs.launcher.accesslog), and compliance alone writes
audit.log.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from libs.config import AppSettings
from libs.rpc.context import current_request_id

SERVING_LOG = "serving.log"
ERROR_LOG = "error.log"
ACCESS_LOG = "access.log"
AUDIT_LOG = "audit.log"
# error.log holds records of this level and up.
ERROR_LEVEL = logging.WARNING

# Libraries that log request content or chatter at INFO.
_QUIET_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "transformers", "sentence_transformers", "httpx",
                  "urllib3", "filelock", "huggingface_hub", "tldextract")


@dataclass(frozen=True)
class LogFiles:
    """Where the log files go and how they rotate."""

    directory: Path
    max_bytes: int
    backup_count: int
    # Another process (make run's launcher) writes serving.log and error.log from this one's output.
    collected: bool = False

    @classmethod
    def of(cls, app: AppSettings) -> LogFiles | None:
        if app.log_dir is None:
            return None
        return cls(app.log_dir, app.log_max_bytes, app.log_backup_count, app.log_collected)

    def path(self, name: str) -> Path:
        return self.directory / name

    def handler(self, name: str) -> RotatingFileHandler:
        """A rotating handler of one file in the folder (created when missing)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return RotatingFileHandler(self.path(name), maxBytes=self.max_bytes, backupCount=self.backup_count,
                                   encoding="utf-8")


class LineFile:
    """A rotating file of ready-made lines (JSON text), e.g. audit.log; thread-safe, one writer per file."""

    def __init__(self, files: LogFiles, name: str) -> None:
        self._handler = files.handler(name)
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    def write(self, line: str) -> None:
        self._handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"}))

    def close(self) -> None:
        self._handler.close()


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


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}{service}{request_id}{trace_id}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def configure_logging(service: str, level: str = "INFO", files: LogFiles | None = None) -> None:
    """Route every log record to stderr as JSON, tagged with the current call's ids; with `files`
    (and nobody collecting this process's output) also to serving.log and, WARNING and up, error.log."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if files is not None and not files.collected:
        error = files.handler(ERROR_LOG)
        error.setLevel(ERROR_LEVEL)
        handlers += [files.handler(SERVING_LOG), error]
    context = _CallContextFilter(service)
    for handler in handlers:
        handler.setFormatter(json_formatter())
        handler.addFilter(context)
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings.warn(...) as JSON records too, not bare stderr text
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
