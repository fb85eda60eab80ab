"""Wall-clock time as the monitor reports it (aware, UTC); injected so tests control it."""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
