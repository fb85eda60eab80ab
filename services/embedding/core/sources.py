"""Where a sentence-transformers model comes from: a small registry of source kinds.

The first kind whose `matches` accepts the configured source resolves it to something
`SentenceTransformer(...)` loads: a folder path or a Hugging Face id.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol

PACKAGE_PREFIX = "package:"


class ModelSourceError(ValueError):
    """The configured model source cannot be resolved (a configuration error: startup fails)."""


@dataclass(frozen=True)
class ResolvedSource:
    kind: str  # "package", "folder" or "hub"
    location: str  # what SentenceTransformer loads: a folder or a hub id
    version: str


class SourceKind(Protocol):
    name: str

    def matches(self, source: str) -> bool: ...

    def resolve(self, source: str, revision: str) -> ResolvedSource: ...


class PackageSource:
    """`package:<module>`: a model shipped in a Python package exposing `get_model_path()`."""

    name = "package"

    def matches(self, source: str) -> bool:
        return source.startswith(PACKAGE_PREFIX)

    def resolve(self, source: str, revision: str) -> ResolvedSource:
        module_name = source.removeprefix(PACKAGE_PREFIX)
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ModelSourceError(f"model package '{module_name}' is not installed") from error
        get_model_path = getattr(module, "get_model_path", None)
        if get_model_path is None:
            raise ModelSourceError(f"model package '{module_name}' has no get_model_path()")
        return ResolvedSource(self.name, str(Path(get_model_path())), _package_version(module_name))


class FolderSource:
    """A local folder saved by sentence-transformers (or a plain transformers model)."""

    name = "folder"

    def matches(self, source: str) -> bool:
        return Path(source).expanduser().is_dir()

    def resolve(self, source: str, revision: str) -> ResolvedSource:
        return ResolvedSource(self.name, str(Path(source).expanduser().resolve()), "local")


class HubSource:
    """Anything else: a Hugging Face id, loaded from the disk cache or the hub at `revision`."""

    name = "hub"

    def matches(self, source: str) -> bool:
        return bool(source.strip())

    def resolve(self, source: str, revision: str) -> ResolvedSource:
        return ResolvedSource(self.name, source.strip(), revision)


SOURCE_KINDS: tuple[SourceKind, ...] = (PackageSource(), FolderSource(), HubSource())


def resolve_source(source: str, revision: str = "main") -> ResolvedSource:
    """The first source kind that accepts `source`, resolved."""
    for kind in SOURCE_KINDS:
        if kind.matches(source):
            return kind.resolve(source, revision)
    raise ModelSourceError("model_source is empty")


def _package_version(module_name: str) -> str:
    distributions = metadata.packages_distributions().get(module_name, [])
    return metadata.version(distributions[0]) if distributions else "unknown"
