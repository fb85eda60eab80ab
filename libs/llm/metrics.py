"""Prometheus metrics of the language-model engine, labelled by model_id only (never request content)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from libs.metrics import REQUEST_QUEUE_TIME

__all__ = [
    "BATCH_SIZE",
    "FINISH_REASONS",
    "GENERATION_TOKENS",
    "INTER_TOKEN_LATENCY",
    "PROMPT_TOKENS",
    "REQUESTS_RUNNING",
    "REQUESTS_WAITING",
    "REQUEST_QUEUE_TIME",
    "SEQUENCES_FINISHED",
    "TIME_TO_FIRST_TOKEN",
]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

TIME_TO_FIRST_TOKEN = Histogram(
    "medai_time_to_first_token_seconds", "Time from a request's arrival to its first generated token",
    ["model_id"], buckets=_LATENCY_BUCKETS,
)
INTER_TOKEN_LATENCY = Histogram(
    "medai_inter_token_latency_seconds", "Time between two generated tokens of one sequence",
    ["model_id"], buckets=_LATENCY_BUCKETS,
)
PROMPT_TOKENS = Counter("medai_prompt_tokens_total", "Prompt tokens processed", ["model_id"])
GENERATION_TOKENS = Counter("medai_generation_tokens_total", "Tokens generated", ["model_id"])
REQUESTS_RUNNING = Gauge("medai_num_requests_running", "Sequences being decoded", ["model_id"])
REQUESTS_WAITING = Gauge("medai_num_requests_waiting", "Requests waiting for a decode slot", ["model_id"])
BATCH_SIZE = Histogram(
    "medai_batch_size", "Sequences decoded together in one forward pass (continuous batching)",
    ["model_id"], buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256),
)
FINISH_REASONS = ("stop", "stop_sequence", "length", "cancelled")
SEQUENCES_FINISHED = Counter(
    "medai_generation_finished_total",
    "Sequences that ended, by reason (cancelled: the caller went away or the stream was closed)",
    ["model_id", "reason"],
)


def initialise(model_id: str) -> None:
    """Export the model's series at 0 from the start (dashboards and rules see 0, not no data)."""
    for reason in FINISH_REASONS:
        SEQUENCES_FINISHED.labels(model_id, reason)
    GENERATION_TOKENS.labels(model_id)
    PROMPT_TOKENS.labels(model_id)
    REQUESTS_RUNNING.labels(model_id)
    REQUESTS_WAITING.labels(model_id)
