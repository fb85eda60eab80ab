"""Request validation shared by the gateway (before any work) and the workers (their limits).

Messages name the field and the rule, never the value a client sent.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from libs.errors import InvalidInput

# A conversation session's name, server-issued or chosen by the client (scoped to its API key).
SESSION_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 64
TEMPERATURE_RANGE = (0.0, 2.0)


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters as the domain sees them; None means 'the model's default'."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return not self.temperature

    @property
    def deterministic(self) -> bool:
        """Greedy or seeded: the same input gives the same output (cacheable)."""
        return self.greedy or self.seed is not None


def validate_session_id(session_id: str) -> None:
    """A non-empty session id must be a name of 1 to 128 letters, digits, '.', '_' or '-'."""
    if session_id and not SESSION_ID.match(session_id):
        raise InvalidInput("must be 1 to 128 letters, digits, '.', '_' or '-'", field="session_id")


def validate_generation_params(params: GenerationParams, max_new_tokens_limit: int | None = None) -> None:
    """Raise InvalidInput naming the first parameter out of range."""
    if params.max_new_tokens is not None:
        upper = max_new_tokens_limit or 1_000_000
        if not 1 <= params.max_new_tokens <= upper:
            raise InvalidInput(f"must be between 1 and {upper}", field="parameters.max_new_tokens")
    if params.temperature is not None and not TEMPERATURE_RANGE[0] <= params.temperature <= TEMPERATURE_RANGE[1]:
        raise InvalidInput("must be between 0 and 2 (0 = greedy)", field="parameters.temperature")
    if params.top_p is not None and not 0.0 < params.top_p <= 1.0:
        raise InvalidInput("must be in (0, 1]", field="parameters.top_p")
    if params.top_k is not None and params.top_k < 0:
        raise InvalidInput("must be >= 0", field="parameters.top_k")
    if params.repetition_penalty is not None and not 0 < params.repetition_penalty < math.inf:
        raise InvalidInput("must be a finite number > 0", field="parameters.repetition_penalty")
    if len(params.stop) > MAX_STOP_SEQUENCES:
        raise InvalidInput(f"at most {MAX_STOP_SEQUENCES} stop strings", field="parameters.stop")
    if any(not s or len(s) > MAX_STOP_CHARS for s in params.stop):
        raise InvalidInput(f"each stop string must have 1 to {MAX_STOP_CHARS} characters", field="parameters.stop")


def validate_inputs(inputs: object, *, max_items: int, max_chars: int) -> list[str]:
    """`inputs` as a list of texts: a non-empty string, or a non-empty list of them."""
    texts = [inputs] if isinstance(inputs, str) else inputs
    if inputs is None:
        raise InvalidInput("is required", field="inputs")
    if not isinstance(texts, list) or not texts:
        raise InvalidInput("must be a string or a non-empty list of strings", field="inputs")
    if len(texts) > max_items:
        raise InvalidInput(f"at most {max_items} items", field="inputs")
    for index, text in enumerate(texts):
        name = "inputs" if isinstance(inputs, str) else f"inputs[{index}]"
        if not isinstance(text, str):
            raise InvalidInput("must be a string", field=name)
        if not text.strip():
            raise InvalidInput("must not be empty", field=name)
        if len(text) > max_chars:
            raise InvalidInput(f"longer than {max_chars} characters", field=name)
    return texts
