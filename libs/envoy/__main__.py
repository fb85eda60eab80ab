"""`python -m libs.envoy`: render the bootstrap from `ENVOY_*` settings, then become Envoy.

The process execs Envoy (no Python parent left), so a process manager's signals reach Envoy itself.
"""
from __future__ import annotations

import os

from libs.config import EnvoySettings
from libs.envoy.config import write_config
from libs.envoy.process import envoy_command
from libs.process import exit_with_parent


def main() -> None:
    settings = EnvoySettings()
    path = write_config(settings, path=settings.config_path.resolve())
    argv = envoy_command(path, settings.base_id)
    exit_with_parent()  # kept across exec: Envoy stops when its supervisor dies
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
