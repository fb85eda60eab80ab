"""Predict request checks done by the gateway before any work (no PHI analysis, no model call).

Messages name the field and the rule, never what the client sent. Token counts: the gateway has
no tokenizer, so it refuses only texts that certainly exceed the model's input window (every
whitespace-separated word is at least one token, also once its PHI is replaced by placeholders);
the worker enforces the exact limit on the de-identified text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from libs.catalog import EMBEDDING
from libs.errors import InvalidInput
from libs.validation import validate_generation_params, validate_inputs, validate_session_id
from services.gateway.core.model import CatalogEntry, PredictCall

MAX_ID_CHARS = 128
MAX_LABEL_CHARS = 256
# Purpose of use: an audit code (the same rule as compliance's).
_PURPOSE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class RequestLimits:
    max_request_bytes: int
    max_inputs: int
    max_input_chars: int


def min_tokens(text: str) -> int:
    """A lower bound of the tokens any subword tokenizer makes of text (one per word)."""
    return len(text.split())


def validate_predict(call: PredictCall, entry: CatalogEntry, limits: RequestLimits) -> list[str]:
    """The call's texts; InvalidInput naming the first field out of bounds."""
    if call.request_bytes > limits.max_request_bytes:
        raise InvalidInput(f"larger than {limits.max_request_bytes} bytes", field="request")
    texts = validate_inputs(call.inputs, max_items=limits.max_inputs, max_chars=limits.max_input_chars)
    model = entry.limits
    if model.max_batch_size and entry.model_type == EMBEDDING and len(texts) > model.max_batch_size:
        raise InvalidInput(f"at most {model.max_batch_size} items for this model", field="inputs")
    counts_tokens = entry.model_type != EMBEDDING or call.truncate is False
    if model.max_input_tokens and counts_tokens:
        for index, text in enumerate(texts):
            if min_tokens(text) > model.max_input_tokens:
                name = "inputs" if isinstance(call.inputs, str) else f"inputs[{index}]"
                raise InvalidInput(f"longer than the model's limit of {model.max_input_tokens} tokens", field=name)
    validate_generation_params(call.params, model.max_new_tokens or None)
    _validate_fields(call, limits)
    return texts


def validate_text(text: str, *, field: str, max_chars: int) -> None:
    """A single required text of at most max_chars characters."""
    if not text.strip():
        raise InvalidInput("must not be empty", field=field)
    if len(text) > max_chars:
        raise InvalidInput(f"longer than {max_chars} characters", field=field)


def _validate_fields(call: PredictCall, limits: RequestLimits) -> None:
    if call.system_prompt is not None and len(call.system_prompt) > limits.max_input_chars:
        raise InvalidInput(f"longer than {limits.max_input_chars} characters", field="parameters.system_prompt")
    validate_session_id(call.session_id)
    if call.purpose and not _PURPOSE.match(call.purpose):
        raise InvalidInput("must be a code of at most 64 letters, digits or ._:- (e.g. TREAT)", field="purpose")
    if len(call.user_id) > MAX_LABEL_CHARS:
        raise InvalidInput(f"longer than {MAX_LABEL_CHARS} characters", field="user_id")
