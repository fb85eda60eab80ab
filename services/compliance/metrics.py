"""Prometheus metrics of the compliance service (labels are entity type names, never text)."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

PHI_ENTITIES_DETECTED = Counter(
    "medai_phi_entities_detected_total", "PHI entities found and replaced by placeholders", ["entity_type"]
)
DEIDENTIFY_SECONDS = Histogram(
    "medai_deidentify_seconds",
    "Time to analyse one batch of texts for PHI",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DEIDENTIFY_BATCH_TEXTS = Histogram(
    "medai_deidentify_batch_texts",
    "Texts analysed together in one batch (concurrent requests share a spaCy pipe)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
DEIDENTIFY_FAILURES = Counter(
    "medai_deidentify_failures_total",
    "Requests whose PHI analysis failed (the request is refused: nothing unanalysed is forwarded)",
)
