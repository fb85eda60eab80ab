"""Embedding worker metrics (labels: model id only, never request content).

The queue wait is the shared `libs.metrics.REQUEST_QUEUE_TIME`.
"""
from __future__ import annotations

from prometheus_client import Counter, Histogram

EMBED_REQUESTS = Counter("medai_embed_requests_total", "Embed requests received", ["model_id"])
EMBED_INPUTS = Counter("medai_embed_inputs_total", "Texts embedded", ["model_id"])
EMBED_TRUNCATED = Counter(
    "medai_embed_truncated_total", "Texts cut to the model's maximum sequence length", ["model_id"]
)
EMBED_BATCH_SIZE = Histogram(
    "medai_embed_batch_size",
    "Texts per forward pass of the embedding model",
    ["model_id"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
