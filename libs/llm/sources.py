"""Resolve a `model_source` string to something loadable, through a registry of source kinds.

Kinds, tried in order: `package:<module>` (a model shipped inside a Python package), a path to
a `.gguf` file, a local folder (safetensors, or PyTorch `.bin` weights that the loader converts
once, unpickling tensors only unless MODEL_ALLOW_PICKLE=true), a Hugging Face hub id
(downloaded into the model cache when a hub is reachable).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from libs.errors import NotReady

GGUF_SUFFIX = ".gguf"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HUB_PATTERNS = ("*.json", "*.safetensors", "*.jinja", "tokenizer*", "*.model", "*.txt")
_HUB_PICKLE_PATTERNS = ("pytorch_model*.bin", "pytorch_model*.bin.index.json")
# PyTorch weights of a folder without an index; other .bin files (e.g. training_args.bin) are not weights.
_PICKLE_WEIGHTS = ("pytorch_model*.bin", "model*.bin")


class ModelSourceError(NotReady):
    """The configured model cannot be found or may not be loaded; the worker cannot serve."""


@dataclass(frozen=True)
class ResolvedSource:
    """A loadable model: a folder of weights, or one GGUF file (converted once into the cache)."""

    kind: str  # "package", "gguf", "folder", "hub"
    source: str  # as configured
    folder: Path
    revision: str
    gguf_file: str | None = None
    # PyTorch pickle weights (.bin files in the folder), converted once into the disk cache.
    pickle_files: tuple[str, ...] = ()

    @property
    def is_gguf(self) -> bool:
        return self.gguf_file is not None

    @property
    def needs_conversion(self) -> bool:
        """Whether the weights are converted into the disk cache before loading (GGUF, PyTorch pickles)."""
        return self.is_gguf or bool(self.pickle_files)

    def fingerprint(self) -> str:
        """Identity of the weights for the disk cache: source, revision and, for files, size and mtime."""
        parts = [self.source, self.revision, str(self.folder.resolve())]
        for name in (self.gguf_file,) if self.gguf_file else self.pickle_files:
            stat = (self.folder / name).stat()
            parts += [name, str(stat.st_size), str(stat.st_mtime_ns)]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class SourceOptions:
    revision: str
    hub_cache_dir: Path
    trust_remote_code: bool = False


@dataclass(frozen=True)
class SourceKind:
    name: str
    matches: Callable[[str], bool]
    resolve: Callable[[str, SourceOptions], ResolvedSource]


def resolve_source(source: str, options: SourceOptions) -> ResolvedSource:
    """The loadable form of `source`; ModelSourceError says why when there is none."""
    for kind in SOURCE_KINDS:
        if kind.matches(source):
            return kind.resolve(source, options)
    raise ModelSourceError(
        "model source must be 'package:<module>', a .gguf file, a model folder or a Hugging Face id"
    )


def _resolve_package(source: str, options: SourceOptions) -> ResolvedSource:
    module = source.removeprefix("package:")
    # find_spec only: importing some model packages needs dependencies we do not use.
    spec = importlib.util.find_spec(module) if module else None
    if spec is None or not spec.origin:
        raise ModelSourceError(f"model package '{module}' is not installed")
    folder = Path(spec.origin).parent
    resolved = _resolve_folder_contents(folder, source, options)
    return ResolvedSource("package", source, resolved.folder, _package_version(module) or options.revision,
                          resolved.gguf_file, resolved.pickle_files)


def _package_version(module: str) -> str | None:
    for distribution in importlib.metadata.packages_distributions().get(module, ()):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _resolve_gguf_file(source: str, options: SourceOptions) -> ResolvedSource:
    path = Path(source).expanduser()
    if not path.is_file():
        raise ModelSourceError("model source .gguf file does not exist")
    return ResolvedSource("gguf", source, path.parent, options.revision, gguf_file=path.name)


def _resolve_folder(source: str, options: SourceOptions) -> ResolvedSource:
    return _resolve_folder_contents(Path(source).expanduser(), source, options)


def _resolve_folder_contents(folder: Path, source: str, options: SourceOptions, kind: str = "folder") -> ResolvedSource:
    if any(folder.glob("*.safetensors")):
        return ResolvedSource(kind, source, folder, options.revision)
    ggufs = sorted(path.name for path in folder.glob(f"*{GGUF_SUFFIX}"))
    if len(ggufs) == 1:
        return ResolvedSource("gguf", source, folder, options.revision, gguf_file=ggufs[0])
    if len(ggufs) > 1:
        raise ModelSourceError(f"model folder holds {len(ggufs)} .gguf files; name one file as the source")
    if pickle_files := _pickle_weight_files(folder):
        return ResolvedSource(kind, source, folder, options.revision, pickle_files=pickle_files)
    raise ModelSourceError("model folder holds no weights (.safetensors, .gguf or pytorch_model*.bin)")


def _pickle_weight_files(folder: Path) -> tuple[str, ...]:
    """PyTorch weight files: the shards an index names, else pytorch_model*.bin / model*.bin."""
    for index in sorted(folder.glob("*.bin.index.json")):
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ModelSourceError(f"model folder's {index.name} is not a valid weight index") from error
        if missing := sorted(name for name in shards if not (folder / name).is_file()):
            raise ModelSourceError(f"model folder lacks {len(missing)} weight shard(s) its index names")
        return tuple(sorted(shards))
    return tuple(sorted({path.name for pattern in _PICKLE_WEIGHTS for path in folder.glob(pattern)}))


def _resolve_hub(source: str, options: SourceOptions) -> ResolvedSource:
    folder = _download(source, options, _HUB_PATTERNS)
    if not any(folder.glob("*.safetensors")):  # an older repository: PyTorch weights only
        folder = _download(source, options, (*_HUB_PATTERNS, *_HUB_PICKLE_PATTERNS))
    return _resolve_folder_contents(folder, source, options, kind="hub")


def _download(source: str, options: SourceOptions, patterns: tuple[str, ...]) -> Path:
    """The repository's files matching patterns, downloaded once into the hub cache (with a progress bar)."""
    from huggingface_hub import snapshot_download  # only this source kind needs the hub client

    try:
        return Path(snapshot_download(source, revision=options.revision, cache_dir=str(options.hub_cache_dir),
                                      allow_patterns=list(patterns)))
    except Exception as error:  # the hub client raises many types (offline, gated, missing revision)
        raise ModelSourceError(
            f"model '{source}' (revision '{options.revision}') could not be fetched from the Hugging Face hub "
            f"and is not in the local cache ({type(error).__name__}); use a local folder or a package model"
        ) from error


def _is_gguf_path(source: str) -> bool:
    return source.lower().endswith(GGUF_SUFFIX)


def _is_folder(source: str) -> bool:
    return Path(source).expanduser().is_dir()


def _is_hub_id(source: str) -> bool:
    return bool(_HUB_ID.match(source)) and not Path(source).exists()


SOURCE_KINDS: tuple[SourceKind, ...] = (
    SourceKind("package", lambda source: source.startswith("package:"), _resolve_package),
    SourceKind("gguf", _is_gguf_path, _resolve_gguf_file),
    SourceKind("folder", _is_folder, _resolve_folder),
    SourceKind("hub", _is_hub_id, _resolve_hub),
)
