"""ONNX backend: the model's transformer exported once into the disk model cache, run by onnxruntime.

sentence-transformers' `backend="onnx"` loads through optimum-onnx, whose releases pin
transformers < 4.58 while sentence-transformers 6 needs transformers 5, so the two cannot be
installed together. This backend therefore exports with `torch.onnx` (the dynamo exporter)
and keeps sentence-transformers' own parts around the graph: its preprocessing (tokenizer,
truncation) before, its modules (pooling, dense, normalize) after. The cache entry is laid out
as sentence-transformers expects (the saved model plus `onnx/model.onnx`), so the same folder
loads with `SentenceTransformer(entry, backend="onnx")` wherever optimum-onnx is installed.

An export is checked against the torch model on probe texts (padded batch included) before it
is renamed into place; one below `MIN_COSINE` never reaches the cache.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sentence_transformers import SentenceTransformer

from libs.llm.cache import ModelCache, Stage
from services.embedding.core.model import LoadOptions, Runtime, sentence_transformer
from services.embedding.core.sources import ModelSourceError, ResolvedSource

log = logging.getLogger(__name__)

EXPORT_FORMAT = "st-onnx-1"  # part of the cache fingerprint: bump when the export changes
ONNX_FILE = Path("onnx") / "model.onnx"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
PROBES = ("warm-up", "The patient reports intermittent chest pain radiating to the left arm since Monday.")
MIN_COSINE = 0.999
EXPORT_STAGES = ("saving the torch model", "exporting to ONNX", "checking the export against torch")
QUIET_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx")
# MODEL_DEVICE -> onnxruntime execution providers, in order of preference.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
}


class _LastHiddenState(torch.nn.Module):
    """The Hugging Face model as a graph of positional tensors -> token embeddings."""

    def __init__(self, model: torch.nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.names = model, tuple(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors, strict=True)), return_dict=True)[OUTPUT_NAME]


def load_onnx(source: ResolvedSource, options: LoadOptions) -> Runtime:
    """Export into the cache once (under a file lock, renamed into place when verified), then load. Blocking."""
    if options.cache_dir is None:
        raise ModelSourceError("the onnx backend needs MODEL_CACHE_DIR")
    providers = select_providers(options.device)
    cache = ModelCache(options.cache_dir / "embedding-onnx")
    entry, exported = cache.get_or_build("-".join(Path(source.location).parts[-2:]), fingerprint(source),
                                         lambda target, stage: export_entry(source, options, target, stage),
                                         stages=len(EXPORT_STAGES))
    model = SentenceTransformer(str(entry), device="cpu", trust_remote_code=options.trust_remote_code)
    encoder = OnnxEncoder(model, entry / ONNX_FILE, providers)
    # Only the tokenizer and the modules after the transformer run in torch: free the transformer's weights.
    _transformer(model).to("meta")
    device = "cuda" if encoder.providers[0] == "CUDAExecutionProvider" else "cpu"
    return Runtime(model, encoder, device, "float32", exported)


def select_providers(device: str) -> list[str]:
    """onnxruntime providers for MODEL_DEVICE (auto: CUDA when this onnxruntime build has it)."""
    available = set(ort.get_available_providers())
    wanted = ("cuda" if "CUDAExecutionProvider" in available else "cpu") if device == "auto" else device
    if PROVIDERS[wanted][0] not in available:
        raise ModelSourceError(f"MODEL_DEVICE={device} needs onnxruntime's {PROVIDERS[wanted][0]} "
                               "(install onnxruntime-gpu for CUDA)")
    return [name for name in PROVIDERS[wanted] if name in available]


def fingerprint(source: ResolvedSource) -> str:
    """Identity of the weights to export: source, version and, for folders, every file's size and mtime."""
    parts = [EXPORT_FORMAT, source.kind, source.location, source.version]
    folder = Path(source.location)
    if source.kind != "hub" and folder.is_dir():
        parts += [f"{path.relative_to(folder)}:{path.stat().st_size}:{path.stat().st_mtime_ns}"
                  for path in sorted(folder.rglob("*")) if path.is_file()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def export_entry(source: ResolvedSource, options: LoadOptions, target: Path, stage: Stage) -> None:
    """Save the float32 torch model and its ONNX graph into `target`; raise if the graph disagrees."""
    stage(EXPORT_STAGES[0])
    model = sentence_transformer(source, LoadOptions(device="cpu", backend="torch", cache_dir=options.cache_dir,
                                                     trust_remote_code=options.trust_remote_code,
                                                     revision=options.revision))
    model.save_pretrained(str(target))
    stage(EXPORT_STAGES[1])
    features = (getattr(model, "preprocess", None) or model.tokenize)(list(PROBES))
    names = [name for name in MODEL_INPUTS if name in features]
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    (target / ONNX_FILE).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), _quiet(QUIET_LOGGERS):
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing chatter
        torch.onnx.export(
            _LastHiddenState(_transformer(model), names), tuple(features[name] for name in names),
            str(target / ONNX_FILE), input_names=names, output_names=[OUTPUT_NAME],
            dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in names),), dynamo=True, verbose=False,
        )
    stage(EXPORT_STAGES[2])
    agreement = _agreement(model, OnnxEncoder(model, target / ONNX_FILE, ["CPUExecutionProvider"]))
    if agreement < MIN_COSINE:
        raise ModelSourceError(f"the ONNX export disagrees with the torch model (cosine {agreement:.5f})")
    log.info("embedding model exported to ONNX", extra={"entry": target.name, "cosine": round(agreement, 6)})


class OnnxEncoder:
    """sentence-transformers' preprocessing -> onnxruntime session -> its remaining modules (pooling, ...)."""

    def __init__(self, model: SentenceTransformer, path: Path, providers: Sequence[str]) -> None:
        self._preprocess = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers < 6
        self._modules = list(model)[1:]
        self._output = getattr(model[0], "module_output_name", "token_embeddings")
        self._session = ort.InferenceSession(str(path), providers=list(providers))
        self._inputs = [node.name for node in self._session.get_inputs()]
        self.providers = self._session.get_providers()

    def __call__(self, texts: list[str]) -> np.ndarray:
        features = self._preprocess(texts)
        feed = {name: features[name].numpy() for name in self._inputs}
        (hidden,) = self._session.run([OUTPUT_NAME], feed)
        features[self._output] = torch.from_numpy(hidden)
        with torch.inference_mode():
            for module in self._modules:
                features = module(features)
        return features["sentence_embedding"].float().numpy()


@contextlib.contextmanager
def _quiet(names: Sequence[str]) -> Iterator[None]:
    """Raise these loggers to ERROR for a while (the exporter logs each graph pass and its notes)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logging.ERROR, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _transformer(model: SentenceTransformer) -> torch.nn.Module:
    inner = getattr(model[0], "auto_model", None)
    if not isinstance(inner, torch.nn.Module):
        raise ModelSourceError("the onnx backend needs a transformers-based sentence-transformers model")
    return inner


def _agreement(model: SentenceTransformer, encoder: OnnxEncoder) -> float:
    """The lowest cosine between torch and ONNX vectors of the probes, encoded as one padded batch."""
    texts = list(PROBES)
    expected = model.encode(texts, convert_to_numpy=True, show_progress_bar=False)
    got = encoder(texts)
    cosines = np.sum(expected * got, axis=1) / (np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1))
    return float(cosines.min())
