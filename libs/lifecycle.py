"""What a service core needs to know about its own lifecycle, without gRPC."""
from __future__ import annotations

from typing import Protocol


class Readiness(Protocol):
    """Where a core reports that it can (or no longer can) serve, e.g. once its model is warm."""

    async def set_serving(self, serving: bool) -> None: ...
