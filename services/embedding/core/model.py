"""Loading a sentence-transformers model and what the embedder needs from it."""
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
# sentence-transformers backend setting -> the catalogue's `backend`.
BACKEND_NAMES: dict[str, str] = {"torch": "sentence-transformers", "onnx": "onnx", "openvino": "openvino"}
WARMUP_TEXT = "warm-up"


@dataclass(frozen=True)
class LoadOptions:
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "torch"
    cache_dir: Path | None = None
    trust_remote_code: bool = False
    revision: str = "main"


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

    def __init__(self, model: SentenceTransformer, source: ResolvedSource, backend: str) -> None:
        self._model = model
        self.source = source
        self.backend = BACKEND_NAMES.get(backend, backend)
        self._counter = TokenCounter(model.tokenizer)
        self.max_seq_length = int(model.max_seq_length or model.tokenizer.model_max_length)
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(dimension() or 0)
        self.device = str(model.device)
        parameters = list(model.parameters())
        self.dtype = str(parameters[0].dtype).removeprefix("torch.") if parameters else "float32"
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
        vectors = self._model.encode(
            texts, batch_size=max(len(texts), 1), convert_to_numpy=True, normalize_embeddings=False,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def warm_up(self) -> None:
        self.encode([WARMUP_TEXT])


def load_model(source: ResolvedSource, options: LoadOptions) -> LoadedModel:
    """Load (blocking; run it in a thread) on the configured device and dtype."""
    _quiet_progress_bars()
    model = SentenceTransformer(
        source.location,
        device=DEVICES[options.device](),
        backend=options.backend,
        revision=options.revision if source.kind == "hub" else None,
        cache_folder=str(options.cache_dir) if options.cache_dir else None,
        trust_remote_code=options.trust_remote_code,
    )
    dtype = TORCH_DTYPES[options.dtype]
    if dtype is not None and options.backend == "torch":
        model = model.to(dtype)
    model.eval()
    return LoadedModel(model, source, options.backend)


def _quiet_progress_bars() -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
