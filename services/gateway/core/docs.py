"""The API documentation the mesh serves itself: the OpenAPI document (generated from the protos by
`make protos`) and a Swagger UI page whose scripts and styles come from the `swagger-ui-py` package's
Swagger UI 5 (no CDN: a hospital network may reach nothing outside)."""
from __future__ import annotations

import importlib.util
import mimetypes
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from libs.errors import NotFound

OPENAPI_PATH = Path(str(resources.files("libs") / "generated" / "openapi.json"))
# The bundle's files the page needs (anything else is not served).
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png",
          "favicon-16x16.png")
# Relative links, so the page also works behind a path prefix.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>MedServe API</title>
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png">
  <link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"
    });
  </script>
</body>
</html>
"""


@dataclass(frozen=True)
class Document:
    content_type: str
    data: bytes


class ApiDocs:
    """Loaded once (a few MB of scripts), answered from memory."""

    def __init__(self, openapi_path: Path = OPENAPI_PATH, assets_dir: Path | None = None) -> None:
        self._openapi = Document("application/json", openapi_path.read_bytes())
        self._page = Document("text/html; charset=utf-8", PAGE.encode())
        folder = assets_dir or _bundle_folder()
        self._assets = {name: Document(_content_type(name), (folder / name).read_bytes()) for name in ASSETS}

    def openapi(self) -> Document:
        return self._openapi

    def page(self) -> Document:
        return self._page

    def asset(self, name: str) -> Document:
        """One of the page's files; NotFound (never quoting the name) for anything else."""
        document = self._assets.get(name)
        if document is None:
            raise NotFound("no such documentation file")
        return document


def _bundle_folder() -> Path:
    """The Swagger UI files of the `swagger-ui-py` package (located, not imported)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package (the gateway's extra) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _content_type(name: str) -> str:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith(("text/", "application/javascript")) else kind
