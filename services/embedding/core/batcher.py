"""Dynamic batching across concurrent requests: one model loop, one forward pass at a time.

Requests wait in a bounded queue. The oldest one waits up to `max_wait_seconds` after its
arrival for company (less when a batch fills first; not at all when it already waited that long
for the model), then the loop takes every queued text as a window, sorts it by token length so
that texts of similar length share a forward pass (less padding), and cuts it into batches
bounded by `max_batch_size` texts and `max_batch_tokens` padded tokens. Texts of a cancelled
request leave the window before their batch starts. New requests wait for the next window, so
no request is overtaken forever.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from libs.errors import MedaiError, NotReady, Overloaded
from libs.metrics import REQUEST_QUEUE_TIME
from services.embedding.core.metrics import EMBED_BATCH_SIZE

log = logging.getLogger(__name__)

Encoder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class BatchLimits:
    max_batch_size: int  # texts per forward pass
    max_batch_tokens: int  # texts x longest text, per forward pass
    max_wait_seconds: float
    max_queue: int  # requests admitted and not yet started


@dataclass(eq=False)
class _Job:
    """One request's texts and the future its caller awaits."""

    texts: Sequence[str]
    lengths: Sequence[int]
    future: asyncio.Future[np.ndarray]
    enqueued_at: float = field(default_factory=time.perf_counter)
    started: bool = False
    vectors: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return not self.future.done()

    def deliver(self, index: int, vector: np.ndarray) -> None:
        self.vectors[index] = vector
        if len(self.vectors) == len(self.texts) and self.live:
            self.future.set_result(np.stack([self.vectors[i] for i in range(len(self.texts))]))


@dataclass(frozen=True)
class _Item:
    job: _Job
    index: int

    @property
    def length(self) -> int:
        return self.job.lengths[self.index]

    @property
    def text(self) -> str:
        return self.job.texts[self.index]


def batch_size_for(sorted_lengths: Sequence[int], max_size: int, max_tokens: int) -> int:
    """How many texts from the front of an ascending length list form the next batch (at least one)."""
    count = 1
    while count < min(len(sorted_lengths), max_size) and (count + 1) * sorted_lengths[count] <= max_tokens:
        count += 1
    return min(count, len(sorted_lengths))


class DynamicBatcher:
    """Admits requests into a bounded queue and encodes them in shared batches."""

    def __init__(self, encode: Encoder, limits: BatchLimits, model_id: str) -> None:
        self._encode = encode
        self._limits = limits
        self._model_id = model_id
        self._queue: deque[_Job] = deque()
        self._jobs: set[_Job] = set()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        """Requests admitted whose texts have not started encoding."""
        return sum(1 for job in self._jobs if not job.started)

    @property
    def running(self) -> int:
        """Requests with texts encoded or encoding, not yet answered."""
        return len(self._jobs) - self.waiting

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"embed-batcher-{self._model_id}")

    async def stop(self) -> None:
        """Stop the loop and fail every request still waiting with NotReady."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in list(self._jobs):
            if job.live:
                job.future.set_exception(NotReady("the embedding model is stopping"))
        self._queue.clear()

    def check_capacity(self) -> None:
        """Raise Overloaded when the queue is full (callers check early, before costly work)."""
        if self.waiting >= self._limits.max_queue:
            raise Overloaded(f"embedding queue is full ({self._limits.max_queue} requests waiting)")

    async def submit(self, texts: Sequence[str], lengths: Sequence[int]) -> np.ndarray:
        """Encode `texts` (token `lengths` after truncation) in some batch; rows in input order."""
        if self._task is None or self._task.done():
            raise NotReady("the embedding model is not running")
        self.check_capacity()
        job = _Job(texts, lengths, asyncio.get_running_loop().create_future())
        self._jobs.add(job)
        job.future.add_done_callback(lambda _: self._jobs.discard(job))
        self._queue.append(job)
        self._arrived.set()
        # Cancelling the caller cancels this future: the job's texts are then skipped.
        return await job.future

    async def _run(self) -> None:
        while True:
            window = await self._next_window()
            while window := [item for item in window if item.job.live]:
                count = batch_size_for([item.length for item in window], self._limits.max_batch_size,
                                       self._limits.max_batch_tokens)
                await self._execute(window[:count])
                window = window[count:]

    async def _next_window(self) -> list[_Item]:
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        # The wait counts from the oldest request's arrival (Triton's max queue delay): under load
        # requests queued while the model was busy start as soon as it is free.
        deadline = self._queue[0].enqueued_at + self._limits.max_wait_seconds
        while not self._fills_batch() and (left := deadline - time.perf_counter()) > 0:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
        jobs = [job for job in self._queue if job.live]
        self._queue.clear()
        items = (_Item(job, index) for job in jobs for index in range(len(job.texts)))
        return sorted(items, key=lambda item: item.length)

    def _fills_batch(self) -> bool:
        lengths = [length for job in self._queue if job.live for length in job.lengths]
        return len(lengths) >= self._limits.max_batch_size or sum(lengths) >= self._limits.max_batch_tokens

    async def _execute(self, batch: list[_Item]) -> None:
        jobs = list(dict.fromkeys(item.job for item in batch))
        now = time.perf_counter()
        for job in jobs:
            if not job.started:
                job.started = True
                REQUEST_QUEUE_TIME.labels(self._model_id).observe(now - job.enqueued_at)
        EMBED_BATCH_SIZE.labels(self._model_id).observe(len(batch))
        try:
            vectors = await asyncio.to_thread(self._encode, [item.text for item in batch])
        except Exception as error:
            log.error("embedding batch of %d texts failed: %s", len(batch), type(error).__name__)
            for job in jobs:
                if job.live:
                    job.future.set_exception(MedaiError())  # answers INTERNAL; the cause may hold text
            return
        for item, vector in zip(batch, vectors, strict=True):
            item.job.deliver(item.index, vector)
