"""Loading a sentence-transformers model with a backend (torch, or ONNX via `core.onnx`) and what the embedder needs."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import tokenizers
import torch
from sentence_transformers import SentenceTransformer

from services.embedding.core.sources import ModelSourceError, ResolvedSource

Encoder = Callable[[list[str]], np.ndarray]

DEVICES: dict[str, Callable[[], str]] = {
    "auto": lambda: "cuda" if torch.cuda.is_available() else "cpu",
    "cpu": lambda: "cpu",
    "cuda": lambda: "cuda",
}
TORCH_DTYPES: dict[str, torch.dtype | None] = {
    "auto": None,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
WARMUP_TEXT = "warm-up"


@dataclass(frozen=True)
class LoadOptions:
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "torch"
    cache_dir: Path | None = None
    trust_remote_code: bool = False
    revision: str = "main"


@dataclass(frozen=True)
class Runtime:
    """What a backend hands the worker: the sentence-transformers model (tokenizer, limits) and its encoder."""

    model: SentenceTransformer
    encode: Encoder  # texts -> float32 rows, not normalized by us
    device: str
    dtype: str
    exported: bool = False  # built into the disk model cache by this load


class TokenCounter:
    """Counts tokens (special tokens included) as the model would, without truncating.

    Uses its own copy of the fast tokenizer that is never reconfigured, so it is safe to
    call from several threads while the model encodes.
    """

    def __init__(self, tokenizer: object) -> None:
        is_raw = isinstance(tokenizer, tokenizers.Tokenizer)  # e.g. StaticEmbedding models
        backend = tokenizer if is_raw else getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ModelSourceError("the embedding model needs a fast (tokenizers) tokenizer")
        self._tokenizer = tokenizers.Tokenizer.from_str(backend.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(encoding.ids) for encoding in self._tokenizer.encode_batch(list(texts))]


class LoadedModel:
    """A loaded model: encode texts (not normalized by us), count their tokens, describe itself."""

    def __init__(self, runtime: Runtime, source: ResolvedSource, backend: str) -> None:
        model = runtime.model
        self._encode = runtime.encode
        self.source = source
        self.backend = BACKENDS[backend].name
        self.exported = runtime.exported
        self._counter = TokenCounter(model.tokenizer)
        self.max_seq_length = int(model.max_seq_length or model.tokenizer.model_max_length)
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)
        self.device, self.dtype = runtime.device, runtime.dtype
        parameters = list(model.parameters())
        self.parameter_count = sum(p.numel() for p in parameters)
        self.memory_bytes = sum(p.numel() * p.element_size() for p in parameters)
        self.loaded_at = datetime.now(UTC)

    @property
    def version(self) -> str:
        return self.source.version

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._counter.count(texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        """One forward pass over `texts` (inputs over max_seq_length are truncated); float32 rows."""
        return np.asarray(self._encode(texts), dtype=np.float32)

    def warm_up(self) -> None:
        self.encode([WARMUP_TEXT])


def sentence_transformer(source: ResolvedSource, options: LoadOptions) -> SentenceTransformer:
    """The torch model on the configured device and dtype, in eval mode. Blocking."""
    _quiet_progress_bars()
    model = SentenceTransformer(
        source.location,
        device=DEVICES[options.device](),
        revision=options.revision if source.kind == "hub" else None,
        cache_folder=str(options.cache_dir) if options.cache_dir else None,
        trust_remote_code=options.trust_remote_code,
    )
    dtype = TORCH_DTYPES[options.dtype]
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


def load_torch(source: ResolvedSource, options: LoadOptions) -> Runtime:
    model = sentence_transformer(source, options)

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=max(len(texts), 1), convert_to_numpy=True,
                            normalize_embeddings=False, show_progress_bar=False)

    parameter = next(model.parameters(), None)
    dtype = str(parameter.dtype).removeprefix("torch.") if parameter is not None else "float32"
    return Runtime(model, encode, str(model.device), dtype)


def load_onnx(source: ResolvedSource, options: LoadOptions) -> Runtime:
    try:  # the optional `onnx` extra
        from services.embedding.core.onnx import load_onnx as load
    except ImportError as error:
        raise ModelSourceError(
            "EMBEDDING_BACKEND=onnx needs onnxruntime, onnx and onnxscript (pip install 'medai-mesh[onnx]')"
        ) from error
    return load(source, options)


@dataclass(frozen=True)
class Backend:
    name: str  # the catalogue's `backend`
    load: Callable[[ResolvedSource, LoadOptions], Runtime]


# EMBEDDING_BACKEND -> how the model is loaded and run.
BACKENDS: dict[str, Backend] = {
    "torch": Backend("sentence-transformers", load_torch),
    "onnx": Backend("onnx", load_onnx),
}


def load_model(source: ResolvedSource, options: LoadOptions) -> LoadedModel:
    """Load with the configured backend (blocking; run it in a thread)."""
    if options.backend not in BACKENDS:
        raise ModelSourceError(f"unknown embedding backend '{options.backend}' (one of: {', '.join(BACKENDS)})")
    return LoadedModel(BACKENDS[options.backend].load(source, options), source, options.backend)


def _quiet_progress_bars() -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
