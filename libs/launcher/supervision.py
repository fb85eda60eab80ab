"""The supervisord configuration of `make run`: every Procfile process, restarted when it dies.

supervisord (a well-kept process supervisor) restarts a process that exits: at once when it had run
for `startsecs`, else after a growing back-off (1 s, 2 s, 3 s ... while the process keeps failing
to start; it gives up after `startretries` attempts, visibly: the process is FATAL). It stops the
processes in reverse priority order, each after the one before has exited, so the gateway drains
first and Envoy goes last. Restarts are reported by the event listener (`libs.launcher.events`).
"""
from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from libs.logs import ACCESS_LOG, LogFiles

# Processes that run for at least this long count as started; a faster exit is a failed start,
# retried with back-off. Model workers take seconds to load their model: a crash while loading
# must back off too, not loop at full speed.
DEFAULT_START_SECONDS = 5
WORKER_START_SECONDS = 60
START_RETRIES = 100
# Seconds supervisord waits, beyond a service's own drain, before it kills a process that did not stop.
STOP_MARGIN_SECONDS = 15
EVENTS_PROGRAM = "events"
# The program that writes the access log (Envoy).
ACCESS_LOG_PROGRAM = "envoy"


@dataclass(frozen=True)
class Program:
    """One supervised process."""

    name: str
    command: str
    # Lower starts first and stops last.
    priority: int
    start_seconds: int = DEFAULT_START_SECONDS


# Start and stop order: Envoy first in, last out; the gateway last in, first out (it drains first,
# while everything behind it still serves its in-flight streams). The model workers form one group:
# they stop together, after compliance.
PRIORITIES = {"envoy": 100, "monitor": 200, "generation": 300, "embedding": 300, "conversation": 300,
              "compliance": 400, "gateway": 500}
GROUPS = {"workers": ("generation", "embedding", "conversation")}
START_SECONDS = {"generation": WORKER_START_SECONDS, "embedding": WORKER_START_SECONDS,
                 "conversation": WORKER_START_SECONDS, "compliance": WORKER_START_SECONDS}
_PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def read_procfile(path: Path) -> dict[str, str]:
    """Process name -> command, from `name: command` lines (comments and blanks skipped)."""
    processes = {}
    for line in path.read_text().splitlines():
        match = _PROCFILE_LINE.match(line.strip())
        if match and not line.lstrip().startswith("#"):
            processes[match.group(1)] = match.group(2)
    return processes


def programs(procfile: dict[str, str], python: str = sys.executable) -> list[Program]:
    """The Procfile's processes as supervised programs; `python` runs their `python -m` commands."""
    return [
        Program(name, _with_python(command, python), PRIORITIES.get(name, 300), START_SECONDS.get(name,
                                                                                                 DEFAULT_START_SECONDS))
        for name, command in procfile.items()
    ]


def _with_python(command: str, python: str) -> str:
    words = shlex.split(command)
    if words and words[0] in ("python", "python3"):
        words[0] = python
    return shlex.join(words)


def render_config(programs_: list[Program], *, state_dir: Path, drain_seconds: float, events_command: str,
                  log_files: LogFiles | None = None) -> str:
    """supervisord.conf: foreground, a control socket in the state dir, every program, the event listener.

    Every process's output goes to supervisord's stdout (the launcher collects it into serving.log and
    error.log when there are log files). With log files, Envoy writes its access log to access.log itself
    (rotated by the launcher); its own log (stderr) stays with the rest.
    """
    socket = control_socket(state_dir)
    environment = {}
    if log_files is not None:
        directory = str(log_files.directory).replace("%", "%%")  # supervisord expands %(...)s in values
        environment = {"environment": f'APP_LOG_DIR="{directory}",APP_LOG_COLLECTED="true"'}
    sections = [
        _section("supervisord", nodaemon="true", logfile="/dev/null", logfile_maxbytes="0", loglevel="warn",
                 pidfile=state_dir / "supervisord.pid", childlogdir=state_dir, **environment),
        _section("unix_http_server", file=socket, chmod="0700"),
        _section("rpcinterface:supervisor",
                 **{"supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"}),
        _section("supervisorctl", serverurl=f"unix://{socket}"),
    ]
    stop_wait = int(drain_seconds) + STOP_MARGIN_SECONDS
    names = {program.name for program in programs_}
    for group, members in GROUPS.items():
        present = [name for name in members if name in names]
        if present:
            sections.append(_section(f"group:{group}", programs=",".join(present),
                                     priority=min(PRIORITIES.get(name, 300) for name in present)))
    for program in programs_:
        sections.append(_section(
            f"program:{program.name}", command=program.command, priority=program.priority, autostart="true",
            autorestart="true", startsecs=program.start_seconds, startretries=START_RETRIES,
            stopsignal="TERM", stopwaitsecs=stop_wait, stopasgroup="true", killasgroup="true",
            **_output(program.name, log_files),
        ))
    sections.append(_section(
        f"eventlistener:{EVENTS_PROGRAM}", command=events_command, events="PROCESS_STATE", priority=1,
        autorestart="true", startsecs=1, buffer_size=1024,
        stderr_logfile="/dev/stdout", stderr_logfile_maxbytes="0",
    ))
    return "\n".join(sections)


def _output(program: str, log_files: LogFiles | None) -> dict[str, object]:
    """Where a program's stdout and stderr go; with log files, Envoy writes its access log to access.log
    itself (the launcher rotates it: `libs.launcher.accesslog`)."""
    output: dict[str, object] = {"redirect_stderr": "true", "stdout_logfile": "/dev/stdout",
                                 "stdout_logfile_maxbytes": "0"}
    if log_files is not None and program == ACCESS_LOG_PROGRAM:
        path = str(log_files.path(ACCESS_LOG)).replace("%", "%%")
        output["environment"] = f'ENVOY_ACCESS_LOG_PATH="{path}"'
    return output


def control_socket(state_dir: Path) -> Path:
    """supervisord's control socket (supervisorctl, and the launcher's signals to a program)."""
    return state_dir / "supervisor.sock"


def _section(name: str, **options: object) -> str:
    lines = [f"[{name}]", *(f"{key}={value}" for key, value in options.items())]
    return "\n".join(lines) + "\n"
