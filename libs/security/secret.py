"""The server secret (pepper) behind every keyed hash: API keys, audit digests, cache keys."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from libs.config import AppSettings

SECRET_FILE = "secret.key"


def load_secret(app: AppSettings) -> bytes:
    """APP_SECRET_KEY when set; otherwise a random secret generated once into the state dir (0600)."""
    if app.secret_key is not None:
        return app.secret_key.get_secret_value().encode()
    path = app.state_dir / SECRET_FILE
    return _read_or_create(path)


def _read_or_create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    value = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value
