"""The async language-model engine: bounded admission, a decode thread that batches every running sequence
(continuous batching, `decode_loop`), streaming and unary generation."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from libs.config import ModelSettings, ServingSettings, WorkerSettings
from libs.errors import InvalidInput, NotReady
from libs.llm import metrics
from libs.llm.admission import Admission
from libs.llm.chat import ChatTemplate
from libs.llm.decode_loop import DecodeLoop
from libs.llm.loader import LoadedModel, load_model
from libs.llm.runner import ModelRunner
from libs.llm.sequence import DecodeSequence, SequenceSpec
from libs.llm.types import Completion, ModelDescription, Prompt, TextDelta
from libs.validation import GenerationParams, validate_generation_params

log = logging.getLogger(__name__)

WARMUP_PROMPTS = ("Hello", "Hello there, how are you?")  # two lengths: prefill, join with padding, leave
Loader = Callable[[str, str, ModelSettings], LoadedModel]


@dataclass(frozen=True)
class EngineConfig:
    model_id: str
    source: str
    revision: str
    model: ModelSettings
    serving: ServingSettings

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> EngineConfig:
        return cls(settings.model_id, settings.model_source, settings.model_revision, settings.model,
                   settings.serving)


class LLMEngine:
    """One model, loaded once; requests are admitted up to the serving limits and decoded in a thread."""

    def __init__(self, config: EngineConfig, loader: Loader = load_model) -> None:
        self.config = config
        self._loader = loader
        self._loaded: LoadedModel | None = None
        self._decode: DecodeLoop | None = None
        self._runner: ModelRunner | None = None
        self._eos_ids: frozenset[int] = frozenset()
        self.chat: ChatTemplate | None = None
        self.warm = False
        serving = config.serving
        self.admission = Admission(serving.max_concurrent_requests, serving.max_queue, self._publish_counts)

    @property
    def model_id(self) -> str:
        return self.config.model_id

    @property
    def description(self) -> ModelDescription | None:
        return self._loaded.description if self._loaded else None

    @property
    def max_batch_size(self) -> int:
        """Sequences one forward pass decodes: every running one, unless the model's caches cannot be stacked."""
        batchable = self._runner is None or self._runner.batchable
        return self.config.serving.max_concurrent_requests if batchable else 1

    @property
    def max_prompt_tokens(self) -> int | None:
        """Prompt tokens accepted: the context window less room for at least one new token."""
        return self._loaded.description.context_length - 1 if self._loaded else None

    async def start(self) -> None:
        """Load (in a thread) and warm up; afterwards the engine is `warm`."""
        await self.load()
        if self.config.serving.warmup:
            await self.warm_up()
        self.warm = True

    async def load(self) -> None:
        config = self.config
        loaded = await asyncio.to_thread(self._loader, config.source, config.revision, config.model)
        self._runner = ModelRunner(loaded.model)
        self._eos_ids = _eos_ids(loaded)
        self.chat = ChatTemplate.of(loaded.tokenizer)
        self._decode = DecodeLoop(self._runner, config.model_id, config.serving.max_prefill_tokens)
        self._decode.start()
        metrics.initialise(config.model_id)
        self._loaded = loaded

    async def warm_up(self) -> None:
        """Short generations through the whole path (first kernels, allocator, tokenizer, batching)."""
        started = time.perf_counter()
        prompts = WARMUP_PROMPTS[:self.config.serving.max_concurrent_requests]
        await asyncio.gather(*(self.complete(prompt, GenerationParams(max_new_tokens=2 + index))
                               for index, prompt in enumerate(prompts)))
        seconds = round(time.perf_counter() - started, 3)
        log.info("model warmed up", extra={"model_id": self.model_id, "seconds": seconds})

    async def close(self) -> None:
        self.warm = False
        if self._decode is not None:
            await asyncio.to_thread(self._decode.stop)

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text, with the tokenizer's special tokens (e.g. BOS)."""
        return list(self.require_loaded().tokenizer(text)["input_ids"])

    def validate(self, params: GenerationParams) -> None:
        """InvalidInput naming the first parameter out of range (also for this model's limits)."""
        validate_generation_params(params, self.config.serving.max_new_tokens_limit)

    def requested_new_tokens(self, params: GenerationParams) -> int:
        """max_new_tokens, or the configured default (the context window may cut it further)."""
        serving = self.config.serving
        return params.max_new_tokens or min(serving.default_max_new_tokens, serving.max_new_tokens_limit)

    def require_loaded(self) -> LoadedModel:
        """The loaded model; NotReady while it is loading."""
        if self._loaded is None:
            raise NotReady("model is loading")
        return self._loaded

    async def complete(self, prompt: Prompt, params: GenerationParams) -> Completion:
        """The whole generation at once."""
        parts: list[str] = []
        async with contextlib.aclosing(self.stream(prompt, params)) as deltas:
            async for delta in deltas:
                parts.append(delta.text)
                if delta.finish_reason is not None and delta.usage is not None:
                    return Completion("".join(parts), delta.finish_reason, delta.usage)
        raise NotReady("generation ended without a result")  # only if the engine stopped mid-way

    async def stream(self, prompt: Prompt, params: GenerationParams) -> AsyncGenerator[TextDelta, None]:
        """Text deltas; the last carries finish_reason and usage. Closing the iterator cancels the sequence."""
        arrived_at = time.perf_counter()
        loaded = self.require_loaded()
        spec = self._spec(prompt, params, arrived_at)
        await self.admission.acquire()
        events: asyncio.Queue[TextDelta | BaseException] = asyncio.Queue()
        sequence = self._submit(spec, loaded, events)
        try:
            while True:
                event = await events.get()
                if isinstance(event, BaseException):
                    raise event
                if event.final:
                    _log_finished(event, arrived_at)
                    yield event
                    return
                yield event
        finally:
            if not sequence.finished:
                log.info("generation stopped by the caller")
            sequence.cancel()  # no-op once finished; else the decode loop drops it before its next step

    def _submit(self, spec: SequenceSpec, loaded: LoadedModel,
                events: asyncio.Queue[TextDelta | BaseException]) -> DecodeSequence:
        """Hand an admitted sequence to the decode loop; the slot comes back when it finishes."""
        try:
            if self._decode is None or self._runner is None:
                raise NotReady("model is loading")
            sequence = DecodeSequence(spec, loaded.tokenizer, self._runner, _threadsafe(events.put_nowait),
                                      _threadsafe(self.admission.release))
            self._decode.submit(sequence)
        except BaseException:
            self.admission.release()
            raise
        return sequence

    def _spec(self, prompt: Prompt, params: GenerationParams, arrived_at: float) -> SequenceSpec:
        self.validate(params)
        prompt_ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        limit = self.max_prompt_tokens or 0
        if not prompt_ids:
            raise InvalidInput("must not be empty", field="inputs")
        if len(prompt_ids) > limit:
            raise InvalidInput(f"prompt has {len(prompt_ids)} tokens; the model accepts at most {limit}",
                               field="inputs")
        room = limit + 1 - len(prompt_ids)  # the context window bounds prompt + generated tokens
        max_new_tokens = min(self.requested_new_tokens(params), room)
        return SequenceSpec(self.model_id, prompt_ids, params, max_new_tokens, self._eos_ids, arrived_at)

    def _publish_counts(self, running: int, waiting: int) -> None:
        metrics.REQUESTS_RUNNING.labels(self.model_id).set(running)
        metrics.REQUESTS_WAITING.labels(self.model_id).set(waiting)


def _eos_ids(loaded: LoadedModel) -> frozenset[int]:
    """End-of-sequence ids from the generation config and the tokenizer (either may list several)."""
    ids: set[int] = set()
    generation_config = getattr(loaded.model, "generation_config", None)
    for value in (getattr(generation_config, "eos_token_id", None), loaded.tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(item) for item in value)
    return frozenset(ids)


def _threadsafe(callback: Callable[..., None]) -> Callable[..., None]:
    """callback, callable from the decode thread: it runs on the caller's event loop."""
    loop = asyncio.get_running_loop()

    def call(*args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            loop.call_soon_threadsafe(callback, *args)

    return call


def _log_finished(delta: TextDelta, arrived_at: float) -> None:
    usage = delta.usage
    log.info("generation finished", extra={
        "finish_reason": delta.finish_reason, "prompt_tokens": usage.prompt_tokens if usage else 0,
        "generated_tokens": usage.generated_tokens if usage else 0,
        "seconds": round(time.perf_counter() - arrived_at, 4),
    })
