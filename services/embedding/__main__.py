"""`python -m services.embedding`: listen at once, load and warm the model in the background."""
from __future__ import annotations

from libs.config import EmbeddingSettings
from libs.service import RunningService, run_service
from services.embedding.server import build_deps, create_server


async def start(settings: EmbeddingSettings) -> RunningService:
    deps = await build_deps(settings)
    server, port = create_server(settings, deps)
    return RunningService(server, port, deps.health, background=[deps.embedder.start], on_stop=[deps.embedder.stop])


if __name__ == "__main__":
    run_service(EmbeddingSettings(), start)
