"""Load a causal LM and its tokenizer: source resolution, conversion into the disk cache, device, dtype,
quantization."""
from __future__ import annotations

import importlib.util
import logging
import math
import pickle
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from libs.config import ModelSettings
from libs.llm.cache import ModelCache, Stage
from libs.llm.sources import ModelSourceError, ResolvedSource, SourceOptions, resolve_source
from libs.llm.types import ModelDescription

log = logging.getLogger(__name__)

_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_BNB_FLAGS: dict[str, Callable[[torch.dtype], dict[str, Any]]] = {
    "8bit": lambda dtype: {"load_in_8bit": True},
    "4bit": lambda dtype: {"load_in_4bit": True, "bnb_4bit_compute_dtype": dtype, "bnb_4bit_quant_type": "nf4"},
}
# Files a converted folder needs besides its weights (the tokenizer is saved by the tokenizer itself).
_CONFIG_FILES = ("generation_config.json",)


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel, in eval mode
    tokenizer: Any  # a transformers tokenizer
    description: ModelDescription
    converted: bool  # a GGUF was converted into the disk cache by this load
    seconds: float


def select_device(preference: str) -> torch.device:
    """`auto`: cuda when available, else cpu; `cuda` without a GPU is a configuration error."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise ModelSourceError("MODEL_DEVICE=cuda but no CUDA device is available")
    if preference == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def select_dtype(preference: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on a GPU that supports it, float16 on an older one, float32 on cpu."""
    if preference != "auto":
        return _DTYPES[preference]
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def quantization_config(settings: ModelSettings, dtype: torch.dtype) -> Any | None:
    """A BitsAndBytesConfig when quantization is on; a clear error when bitsandbytes is missing."""
    if not settings.use_quantization:
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelSourceError(
            f"MODEL_USE_QUANTIZATION asks for {settings.quantization_type} weights but bitsandbytes is not "
            "installed (pip install 'medai-mesh[quantization]')"
        )
    from transformers import BitsAndBytesConfig

    _quiet_bitsandbytes()
    return BitsAndBytesConfig(**_BNB_FLAGS[settings.quantization_type](dtype))


def _quiet_bitsandbytes() -> None:
    """bitsandbytes warns on every 8-bit forward pass that fp32 inputs are cast (on CPU): keep it out of the logs."""
    logging.getLogger("bitsandbytes.autograd._functions").addFilter(
        lambda record: "inputs will be cast" not in record.getMessage())


def load_model(source: str, revision: str, settings: ModelSettings) -> LoadedModel:
    """Resolve, convert when needed (once, cached), and load onto the selected device. Blocking."""
    started = time.perf_counter()
    cache = ModelCache(settings.cache_dir, settings.cache_max_bytes)
    options = SourceOptions(revision=revision, hub_cache_dir=settings.cache_dir / "hub",
                            trust_remote_code=settings.trust_remote_code)
    resolved = resolve_source(source, options)
    folder, converted = _loadable_folder(resolved, cache, settings.allow_pickle)
    device = select_device(settings.device)
    dtype = select_dtype(settings.dtype, device)
    quantization = quantization_config(settings, dtype)
    model = _load_weights(folder, settings, device, dtype, quantization)
    tokenizer = _load_tokenizer(folder, settings)
    description = ModelDescription(
        device=str(next(model.parameters()).device),
        dtype=str(dtype).removeprefix("torch."),
        quantization=settings.quantization_type if quantization is not None else "none",
        parameter_count=parameter_count(model),
        memory_bytes=int(model.get_memory_footprint()),
        context_length=context_length(model.config, tokenizer),
        revision=resolved.revision,
        loaded_at=datetime.now(UTC),
    )
    seconds = time.perf_counter() - started
    log.info("model loaded", extra={"kind": resolved.kind, "device": description.device, "dtype": description.dtype,
                                    "converted": converted, "seconds": round(seconds, 2)})
    return LoadedModel(model, tokenizer, description, converted, seconds)


def parameter_count(model: Any) -> int:
    """Parameters of the model as trained (4-bit weights are packed two to a byte; count what they stand for)."""
    total = 0
    for parameter in model.parameters():
        quant_state = getattr(parameter, "quant_state", None)
        shape = getattr(quant_state, "shape", None)
        total += math.prod(shape) if shape is not None else parameter.numel()
    return total


def context_length(config: Any, tokenizer: Any) -> int:
    """Positions the model can attend to (the tokenizer's limit when the config names none)."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return int(min(tokenizer.model_max_length, 1 << 20))


def _loadable_folder(resolved: ResolvedSource, cache: ModelCache, allow_pickle: bool) -> tuple[Path, bool]:
    """A folder of safetensors: the source's own, or its conversion in the disk cache (built once)."""
    if resolved.is_gguf:
        return cache.get_or_build(Path(resolved.gguf_file or "").stem, resolved.fingerprint(),
                                  lambda target, stage: convert_gguf(resolved, target, stage), stages=3)
    if resolved.pickle_files:
        return cache.get_or_build(resolved.folder.name, resolved.fingerprint(),
                                  lambda target, stage: convert_pickle(resolved, target, stage, allow_pickle),
                                  stages=len(resolved.pickle_files) + 2)
    return resolved.folder, False


def convert_gguf(resolved: ResolvedSource, target: Path, stage: Stage) -> None:
    """Dequantize a GGUF into safetensors + tokenizer files in `target` (slow: seconds to minutes)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stage("dequantizing GGUF weights")
    model = AutoModelForCausalLM.from_pretrained(resolved.folder, gguf_file=resolved.gguf_file)
    # The GGUF loader marks the model as quantized; its weights are plain tensors by now.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    stage("writing safetensors")
    model.save_pretrained(target)
    stage("writing tokenizer")
    AutoTokenizer.from_pretrained(resolved.folder, gguf_file=resolved.gguf_file).save_pretrained(target)


def convert_pickle(resolved: ResolvedSource, target: Path, stage: Stage, allow_pickle: bool) -> None:
    """PyTorch .bin weights -> safetensors in `target`, unpickling tensors only (weights_only) unless allowed."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    state: dict[str, torch.Tensor] = {}
    for name in resolved.pickle_files:
        stage(f"reading {name}")
        state |= _unpickle_weights(resolved.folder / name, allow_pickle)
    stage("writing safetensors")
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolved.folder))
    missing = set(model.load_state_dict(state, strict=False).missing_keys) - _tied_keys(model)
    if missing:
        raise ModelSourceError(f"model weights lack {len(missing)} tensor(s) the model's config needs")
    model.tie_weights()
    model.save_pretrained(target)
    for name in _CONFIG_FILES:
        if (resolved.folder / name).is_file():
            shutil.copy2(resolved.folder / name, target / name)
    stage("writing tokenizer")
    AutoTokenizer.from_pretrained(resolved.folder).save_pretrained(target)


def _tied_keys(model: Any) -> set[str]:
    """Parameters that share another's tensor (e.g. lm_head.weight = the embeddings): files often omit them."""
    tied = getattr(model, "_tied_weights_keys", None) or ()
    names = set(tied.keys() if isinstance(tied, dict) else tied)
    embeddings, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head is not None and embeddings is not None and head.weight is embeddings.weight:
        names |= {f"{name}.weight" for name, module in model.named_modules() if module is head}
    return names


def _unpickle_weights(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    """The tensors of a PyTorch file; ModelSourceError when it holds other objects and pickle is not allowed."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as error:
        raise ModelSourceError(
            f"model weights file {path.name} holds pickled objects other than tensors, and unpickling them can run "
            "arbitrary code: it was refused. Convert the weights to safetensors, or set MODEL_ALLOW_PICKLE=true "
            "if you trust the file"
        ) from error
    if not isinstance(loaded, dict):
        raise ModelSourceError(f"model weights file {path.name} does not hold a state dict")
    return {key: value for key, value in loaded.items() if isinstance(value, torch.Tensor)}


def _load_weights(folder: Path, settings: ModelSettings, device: torch.device, dtype: torch.dtype,
                  quantization: Any | None) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True, "trust_remote_code": settings.trust_remote_code}
    if quantization is not None:
        kwargs |= {"quantization_config": quantization, "device_map": {"": str(device)}}
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if quantization is None:
        model = model.to(device)
    return model.eval()


def _load_tokenizer(folder: Path, settings: ModelSettings) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, trust_remote_code=settings.trust_remote_code)
