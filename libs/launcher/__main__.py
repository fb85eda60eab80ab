"""`python -m libs.launcher` (what `make run` starts): every process of the Procfile under honcho.

Ctrl-C or SIGTERM stops every child (honcho signals each child's process group, then kills
what is left after a few seconds); when one child exits, the others are stopped too.
"""
from __future__ import annotations

import asyncio
import sys
import threading
import time

from honcho.environ import parse_procfile
from honcho.manager import Manager

from libs.config import LauncherSettings
from libs.launcher.devkey import ensure_dev_key
from libs.launcher.readiness import wait_until_serving

SERVICES = ("gateway", "compliance", "generation", "embedding", "conversation", "monitor")


def _banner(settings: LauncherSettings, started: float) -> str:
    base = f"http://127.0.0.1:{settings.envoy.port}"
    key = settings.app.state_dir / "dev-api-key"
    return "\n".join([
        "",
        f"MedServe is up: all {len(SERVICES)} services SERVING after {time.monotonic() - started:.1f} s",
        f"  JSON/HTTP and gRPC  {base}",
        f"  health              {base}/health",
        f"  metrics             {base}/metrics",
        f"  models              {base}/models",
        f"  Envoy admin         http://127.0.0.1:{settings.envoy.admin_port}",
        f"  dev API key (admin) {key}",
        f'  try: curl -s -H "Authorization: Bearer $(cat {key})" {base}/models',
        "Press Ctrl-C to stop.",
        "",
    ])


def _watch_readiness(settings: LauncherSettings, manager: Manager, started: float, stop: threading.Event) -> None:
    url = f"http://127.0.0.1:{settings.envoy.port}/health"
    if wait_until_serving(url, SERVICES, settings.ready_timeout_seconds, stop):
        print(_banner(settings, started), flush=True)
    elif not stop.is_set():
        print(f"the mesh did not report SERVING within {settings.ready_timeout_seconds:.0f} s; stopping",
              file=sys.stderr, flush=True)
        manager.returncode = 1
        manager.terminate()


def main() -> int:
    settings = LauncherSettings()
    started = time.monotonic()
    settings.app.data_dir.mkdir(parents=True, exist_ok=True)
    key_path, created = asyncio.run(ensure_dev_key(settings.app))
    if created:
        print(f"created an admin API key for local use in {key_path} (mode 0600)", flush=True)
    manager = Manager()
    for name, process in parse_procfile(settings.procfile.read_text()).processes.items():
        manager.add_process(name, process)
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_readiness, args=(settings, manager, started, stop), daemon=True)
    watcher.start()
    try:
        manager.loop()
    finally:
        stop.set()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
