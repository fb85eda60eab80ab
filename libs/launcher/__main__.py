"""`python -m libs.launcher` (what `make run` starts): every process of the Procfile under supervisord.

A process that dies is restarted (with back-off while it keeps failing to start) and the others keep
serving. Ctrl-C or SIGTERM drains the mesh: Envoy's readiness fails first (load balancers stop
sending), then supervisord stops the services gateway first and Envoy last, each after the one
before has finished its in-flight calls (up to APP_DRAIN_SECONDS); nothing is left running.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from libs.config import LauncherSettings
from libs.launcher.accesslog import AccessLogRotator, signal_program
from libs.launcher.devcerts import describe, ensure_dev_certs
from libs.launcher.devkey import ensure_dev_key
from libs.launcher.logfiles import OutputCollector
from libs.launcher.readiness import wait_until_serving
from libs.launcher.supervision import ACCESS_LOG_PROGRAM, control_socket, programs, read_procfile, render_config
from libs.logs import LogFiles
from libs.process import exit_with_parent

SERVICES = ("gateway", "compliance", "generation", "embedding", "conversation", "monitor")
CONFIG_NAME = "supervisord.conf"
# APP_LOG_DIR when it is not set: `make run` keeps the seed's log files here.
DEFAULT_LOG_DIR = Path("logs")


def log_files(settings: LauncherSettings) -> LogFiles | None:
    """The log files of this run: APP_LOG_DIR as set (empty: none), else ./logs; collected by the launcher."""
    app = settings.app
    directory = app.log_dir if "log_dir" in app.model_fields_set else DEFAULT_LOG_DIR
    if directory is None:
        return None
    return LogFiles(directory.resolve(), app.log_max_bytes, app.log_backup_count, collected=True)


def _tls_lines(settings: LauncherSettings) -> list[str]:
    tls, envoy = settings.tls, settings.envoy
    lines = [f"  mesh mTLS           on, certificates in {tls.folder(settings.app.state_dir)}" if tls.enabled
             else "  mesh mTLS           OFF (TLS_ENABLED=false): internal hops are plaintext"]
    if envoy.downstream_tls:
        lines.append(f"  HTTPS and gRPC/TLS  https://{envoy.tls_host}:{envoy.tls_port}")
    return lines


def _banner(settings: LauncherSettings, started: float, config: Path) -> str:
    base = f"http://127.0.0.1:{settings.envoy.port}"
    key = settings.app.state_dir / "dev-api-key"
    return "\n".join([
        "",
        f"MedServe is up: all {len(SERVICES)} services SERVING after {time.monotonic() - started:.1f} s",
        f"  JSON/HTTP and gRPC  {base}   (plaintext, for local use)",
        *_tls_lines(settings),
        f"  health              {base}/health",
        f"  metrics             {base}/metrics",
        f"  models              {base}/models",
        f"  Envoy admin         http://127.0.0.1:{settings.envoy.admin_port}",
        f"  dev API key (admin) {key}",
        f"  processes           {Path(sys.executable).parent / 'supervisorctl'} -c {config} status",
        f'  try: curl -s -H "Authorization: Bearer $(cat {key})" {base}/models',
        "Press Ctrl-C to stop.",
        "",
    ])


def write_config(settings: LauncherSettings) -> Path:
    path = settings.app.state_dir / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    events = f"{sys.executable} -m libs.launcher.events"
    supervised = programs(read_procfile(settings.procfile))
    path.write_text(render_config(supervised, state_dir=settings.app.state_dir.resolve(),
                                  drain_seconds=settings.app.drain_seconds, events_command=events,
                                  log_files=log_files(settings)))
    return path


def fail_envoy_readiness(admin_port: int) -> None:
    """Envoy's /ready (and health checks) answer 503 from now on, and it closes idle client connections."""
    request = urllib.request.Request(f"http://127.0.0.1:{admin_port}/healthcheck/fail", method="POST")
    with contextlib.suppress(urllib.error.URLError, OSError):  # Envoy is not running: nothing to fail
        urllib.request.urlopen(request, timeout=2).close()


class Launcher:
    """supervisord as a child in its own session (a terminal's Ctrl-C reaches only us), stopped in order."""

    def __init__(self, settings: LauncherSettings) -> None:
        self._settings = settings
        self._stop = threading.Event()
        self._failed = False
        self._supervisor: subprocess.Popen | None = None

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> int:
        started = time.monotonic()
        config = write_config(self._settings)
        # Its own session: a terminal's Ctrl-C reaches only us, and we stop it in order. It dies with us.
        files = log_files(self._settings)
        output = subprocess.PIPE if files is not None else None
        self._supervisor = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c", str(config)],
                                            start_new_session=True, preexec_fn=exit_with_parent,
                                            stdout=output, stderr=subprocess.STDOUT if output else None, text=True,
                                            errors="replace")
        collector = None
        if files is not None:
            print(f"log files in {files.directory}", flush=True)
            collector = threading.Thread(target=OutputCollector(files, sys.stdout).run,
                                         args=(self._supervisor.stdout,), daemon=True)
            collector.start()
            socket = control_socket(self._settings.app.state_dir.resolve())
            rotator = AccessLogRotator(files, lambda: signal_program(socket, ACCESS_LOG_PROGRAM, "USR1"))
            threading.Thread(target=rotator.run, args=(self._stop,), daemon=True).start()
        threading.Thread(target=self._watch_readiness, args=(started, config), daemon=True).start()
        try:
            while not self._stop.wait(0.1):
                if self._supervisor.poll() is not None:  # supervisord itself ended (it should not)
                    return self._supervisor.returncode or 1
            self._drain()
            return 1 if self._failed else self._supervisor.returncode or 0
        finally:
            if collector is not None:
                collector.join(timeout=5)  # the last lines, once supervisord's output ends

    def _drain(self) -> None:
        print("stopping: draining the mesh (gateway first, Envoy last)", flush=True)
        fail_envoy_readiness(self._settings.envoy.admin_port)
        if self._supervisor.poll() is None:
            self._supervisor.send_signal(signal.SIGTERM)
        self._supervisor.wait()

    def _watch_readiness(self, started: float, config: Path) -> None:
        settings = self._settings
        url = f"http://127.0.0.1:{settings.envoy.port}/health"
        if wait_until_serving(url, SERVICES, settings.ready_timeout_seconds, self._stop):
            print(_banner(settings, started, config), flush=True)
        elif not self._stop.is_set():
            print(f"the mesh did not report SERVING within {settings.ready_timeout_seconds:.0f} s; stopping",
                  file=sys.stderr, flush=True)
            self._failed = True
            self._stop.set()


def main() -> int:
    exit_with_parent()  # whoever started `make run` going away (a killed terminal, test) stops the mesh too
    settings = LauncherSettings()
    settings.app.data_dir.mkdir(parents=True, exist_ok=True)
    key_path, created = asyncio.run(ensure_dev_key(settings.app))
    if created:
        print(f"created an admin API key for local use in {key_path} (mode 0600)", flush=True)
    certificates = ensure_dev_certs(settings)
    line = describe(certificates) if certificates else None
    if line:
        print(line, flush=True)
    launcher = Launcher(settings)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, launcher.request_stop)
    return launcher.run()


if __name__ == "__main__":
    sys.exit(main())
