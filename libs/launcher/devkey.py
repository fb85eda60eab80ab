"""The local admin key `make run` creates once and keeps in `.medai/dev-api-key` (0600)."""
from __future__ import annotations

import os
from pathlib import Path

from libs.config import AppSettings
from libs.security.secret import load_secret
from libs.stores.db import open_database
from libs.stores.keys import KeyStore

DEV_KEY_FILE = "dev-api-key"
DEV_KEY_NAME = "local development (make run)"


async def ensure_dev_key(app: AppSettings) -> tuple[Path, bool]:
    """The dev key file, and whether a new key was created (none yet, or the stored one is unknown)."""
    path = app.state_dir / DEV_KEY_FILE
    db = await open_database(app.resolved_database_url())
    try:
        store = KeyStore(db, load_secret(app))
        await store.migrate()
        if path.exists() and await store.authenticate(path.read_text().strip()) is not None:
            return path, False
        _, plaintext = await store.create(name=DEV_KEY_NAME, role="admin")
    finally:
        await db.close()
    _write_private(path, plaintext)
    return path, True


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
    os.replace(temporary, path)
