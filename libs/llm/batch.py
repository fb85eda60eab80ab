"""The running batch of continuous batching: the KV caches of several sequences side by side, left-padded.

Sequences that arrive together are prefilled together (left-padded, each with its own position ids)
and then join the running batch between two decode steps: the shorter side is padded on the left
with zeros that the attention mask hides, and every row keeps its own position ids. Finished or
cancelled rows leave by index; columns that became padding in every row are trimmed, so the batch
is never longer than its longest sequence.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer


def can_merge(cache: Any) -> bool:
    """Whether caches of this kind can be padded and stacked: every layer a plain (full-attention) DynamicLayer.

    Sliding-window, linear-attention or quantized layers keep state that left padding would corrupt;
    their sequences are prefilled and decoded in batches of one.
    """
    layers = getattr(cache, "layers", None)
    if layers is None:
        return False
    if not layers:  # built lazily, one DynamicLayer per model layer
        return getattr(cache, "layer_class_to_replicate", None) is DynamicLayer
    return all(type(layer) is DynamicLayer for layer in layers)


def left_padded(prompts: Sequence[Sequence[int]], device: torch.device) -> dict[str, torch.Tensor]:
    """Forward arguments for prompts of different lengths: ids, attention mask and position ids, padding first."""
    width = max(len(prompt) for prompt in prompts)
    ids = [[0] * (width - len(prompt)) + list(prompt) for prompt in prompts]
    mask = torch.tensor([[0] * (width - len(prompt)) + [1] * len(prompt) for prompt in prompts], device=device)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": torch.tensor(ids, dtype=torch.long, device=device), "attention_mask": mask,
            "position_ids": positions}


class KVBatch:
    """Rows of a batched KV cache with their attention mask (1 = real token) and next position ids."""

    def __init__(self, cache: Any = None, mask: torch.Tensor | None = None) -> None:
        """Empty, or the rows a prefill left in `cache`, `mask` telling their real tokens (rows, width)."""
        self.cache = cache
        self.mask = mask if mask is not None else torch.zeros(0, 0, dtype=torch.long)
        self.positions = self.mask.sum(dim=1)

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    @property
    def width(self) -> int:
        """Columns of the cache (the longest row, with its padding)."""
        return int(self.mask.shape[1])

    def clear(self) -> None:
        """Drop every row (and the cache's memory)."""
        self.cache = None
        self.mask = torch.zeros(0, 0, dtype=torch.long)
        self.positions = self.mask.sum(dim=1)

    def extend(self, other: KVBatch) -> None:
        """Append other's rows after ours (other is consumed)."""
        if not len(other):
            return
        if not len(self):
            self.cache, self.mask, self.positions = other.cache, other.mask, other.positions
            return
        width = max(self.width, other.width)
        for batch in (self, other):
            batch._left_pad(width - batch.width)
        for mine, theirs in zip(_layers(self.cache), _layers(other.cache), strict=True):
            mine.keys = torch.cat([mine.keys, theirs.keys])
            mine.values = torch.cat([mine.values, theirs.values])
        self.mask = torch.cat([self.mask, other.mask])
        self.positions = torch.cat([self.positions, other.positions])

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only these rows (in this order), then drop the columns that are padding in every row."""
        if list(rows) == list(range(len(self))):
            return
        if not rows:
            self.clear()
            return
        index = torch.tensor(list(rows), dtype=torch.long, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.positions = self.mask[index], self.positions[index]
        self._trim()

    def inputs(self, tokens: Sequence[int]) -> dict[str, torch.Tensor]:
        """Forward arguments that feed each row its next token (in row order)."""
        device = self.mask.device
        input_ids = torch.tensor([[token] for token in tokens], dtype=torch.long, device=device)
        mask = torch.cat([self.mask, torch.ones(len(self), 1, dtype=self.mask.dtype, device=device)], dim=1)
        return {"input_ids": input_ids, "attention_mask": mask, "position_ids": self.positions.unsqueeze(1)}

    def advance(self, inputs: dict[str, torch.Tensor]) -> None:
        """Record that the forward pass with `inputs` appended one token to every row."""
        self.mask = inputs["attention_mask"]
        self.positions = self.positions + 1

    def _left_pad(self, columns: int) -> None:
        """Zeros before every row: in the mask and in every layer's keys and values (batch, heads, seq, dim)."""
        if columns <= 0:
            return
        self.mask = torch.cat([self.mask.new_zeros(len(self), columns), self.mask], dim=1)
        for layer in _layers(self.cache):
            layer.keys = _pad_sequence_axis(layer.keys, columns)
            layer.values = _pad_sequence_axis(layer.values, columns)

    def _trim(self) -> None:
        used = self.mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else self.width
        if start == 0:
            return
        for layer in _layers(self.cache):
            layer.keys = layer.keys[:, :, start:]
            layer.values = layer.values[:, :, start:]
        self.mask = self.mask[:, start:]


def _layers(cache: Any) -> list[DynamicLayer]:
    return [layer for layer in cache.layers if layer.is_initialized]


def _pad_sequence_axis(tensor: torch.Tensor, columns: int) -> torch.Tensor:
    batch, heads, _, dim = tensor.shape
    return torch.cat([tensor.new_zeros(batch, heads, columns, dim), tensor], dim=2)
