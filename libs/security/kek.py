"""The key-encryption key (KEK) that wraps payload data keys: MEDICAL_KEK (base64), MEDICAL_KEK_FILE,
or 32 random bytes generated once into the state dir (0600) for local use."""
from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from libs.config import AppSettings, MedicalSettings

KEK_FILE = "payload-kek.key"


def load_kek(medical: MedicalSettings, app: AppSettings) -> bytes:
    if medical.kek is not None:
        return _decoded(medical.kek.get_secret_value())
    path = medical.kek_file or app.state_dir / KEK_FILE
    if medical.kek_file is None:
        _create_once(path)
    return _decoded(path.read_text())


def _decoded(value: str) -> bytes:
    key = base64.b64decode(value.strip())
    if len(key) != 32:
        raise ValueError("the key-encryption key must be 32 bytes, base64-encoded")
    return key


def _create_once(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(secrets.token_bytes(32)).decode())
