from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.deploy.artifacts import clean_environment


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No .env and no service variables from the developer's shell."""
    return clean_environment(monkeypatch, tmp_path)
