"""`python -m services.generation`: listen at once, load and warm the model in the background."""
from __future__ import annotations

from libs.config import GenerationSettings
from libs.service import RunningService, run_service
from services.generation.server import build_deps, create_server


async def start(settings: GenerationSettings) -> RunningService:
    deps = await build_deps(settings)
    server, port = create_server(settings, deps)
    return RunningService(server, port, deps.health, background=[deps.core.start], on_stop=[deps.core.stop])


if __name__ == "__main__":
    run_service(GenerationSettings(), start)
