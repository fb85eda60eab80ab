"""`python -m libs.launcher.events`: supervisord's event listener for `make run`.

It hears every process state change (supervisord's eventlistener protocol on stdin/stdout), logs
what an operator must see (a service that died and was restarted, a crash loop backing off, a
service given up on), and serves the counts on a Prometheus endpoint the monitor scrapes:
`medai_service_restarts_total{program}` and `medai_service_running{program}` (`program`: the supervised
process, e.g. "generation"; the monitor labels every series it gathers with service="supervisor").
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from prometheus_client import Counter, Gauge
from supervisor import childutils

from libs.config import LauncherSettings
from libs.logs import LogFiles, configure_logging
from libs.metrics import serve_metrics
from libs.process import exit_with_parent

log = logging.getLogger("libs.launcher.events")

RESTARTS = Counter("medai_service_restarts_total", "Times a service was started again after it exited",
                   ["program"])
RUNNING = Gauge("medai_service_running", "1 while the service's process runs, else 0", ["program"])
# A process that goes STARTING after one of these was restarted (not started for the first time).
RESTARTED_FROM = frozenset({"EXITED", "BACKOFF"})


@dataclass(frozen=True)
class StateChange:
    service: str
    state: str  # PROCESS_STATE_<state>
    from_state: str
    pid: str = ""
    expected: str = ""


def parse(headers: dict[str, str], payload: str) -> StateChange | None:
    """The state change a PROCESS_STATE_* event reports, else None."""
    event = headers.get("eventname", "")
    if not event.startswith("PROCESS_STATE_"):
        return None
    fields, _ = childutils.eventdata(payload + "\n")
    return StateChange(fields.get("processname", ""), event.removeprefix("PROCESS_STATE_"),
                       fields.get("from_state", ""), fields.get("pid", ""), fields.get("expected", ""))


def observe(change: StateChange) -> None:
    """Metrics and a log line for one state change."""
    RUNNING.labels(change.service).set(1 if change.state == "RUNNING" else 0)
    describe = _DESCRIPTIONS.get(change.state)
    if change.state == "STARTING" and change.from_state in RESTARTED_FROM:
        RESTARTS.labels(change.service).inc()
        log.warning("service restarting", extra={"supervised": change.service, "after": change.from_state})
    elif describe is not None:
        level, message = describe(change)
        log.log(level, message, extra={"supervised": change.service, "pid": change.pid})


_DESCRIPTIONS: dict[str, Callable[[StateChange], tuple[int, str]]] = {
    "RUNNING": lambda c: (logging.INFO, "service process running"),
    "EXITED": lambda c: ((logging.INFO, "service process exited as expected") if c.expected == "1"
                         else (logging.ERROR, "service process died; restarting it")),
    "BACKOFF": lambda c: (logging.ERROR, "service exited before it was up for its start period; "
                                         "retrying with growing back-off (crash loop?)"),
    "FATAL": lambda c: (logging.CRITICAL, "service keeps failing to start; supervisor gave up on it"),
    "STOPPED": lambda c: (logging.INFO, "service process stopped"),
}


def listen(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    """Serve supervisord's events until it closes our stdin."""
    protocol = childutils.listener
    while True:
        try:
            headers, payload = protocol.wait(stdin, stdout)
        except (ValueError, KeyError, EOFError):  # stdin closed: supervisord is gone
            return
        change = parse(headers, payload)
        if change is not None:
            observe(change)
        protocol.ok(stdout)


def main() -> None:
    exit_with_parent()
    settings = LauncherSettings()
    # To stderr (stdout is the protocol), which the launcher collects into the log files.
    configure_logging("supervisor", settings.app.log_level, LogFiles.of(settings.app))
    stop_metrics = serve_metrics("127.0.0.1", settings.metrics_port)
    try:
        listen()
    finally:
        stop_metrics()


if __name__ == "__main__":
    main()
