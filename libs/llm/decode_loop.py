"""The one thread that owns the model: continuous batching of every admitted sequence.

Each round: sequences cancelled since the last round leave; newly arrived ones are prefilled
together (left-padded, within a prompt-token budget, so running streams pause at most about that
long) and join the running batch; then one batched forward pass decodes the next token of every
running sequence, and those that finished leave. A sequence thus joins or leaves between two
decode steps, and a cancelled one stops within one step. Models whose KV caches cannot be stacked
(e.g. sliding-window attention) run each sequence as its own batch of one, in turns.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

import torch

from libs.errors import NotReady
from libs.llm import metrics
from libs.llm.batch import KVBatch
from libs.llm.runner import ModelRunner
from libs.llm.sequence import DecodeSequence

log = logging.getLogger(__name__)


class RunningBatch:
    """Sequences decoded together, row i of the KV batch being sequences[i]."""

    def __init__(self) -> None:
        self.kv = KVBatch()
        self.sequences: list[DecodeSequence] = []

    def extend(self, sequences: list[DecodeSequence], kv: KVBatch) -> None:
        self.kv.extend(kv)
        self.sequences += sequences

    def retain(self, keep: Callable[[DecodeSequence], bool]) -> None:
        rows = [row for row, sequence in enumerate(self.sequences) if keep(sequence)]
        self.kv.keep(rows)
        self.sequences = [self.sequences[row] for row in rows]


class DecodeLoop:
    """Owns the model in one thread; `submit` hands it sequences from any thread."""

    def __init__(self, runner: ModelRunner, model_id: str, max_prefill_tokens: int) -> None:
        self._runner = runner
        self._model_id = model_id
        self._max_prefill_tokens = max_prefill_tokens
        self._incoming: deque[DecodeSequence] = deque()  # guarded by _wakeup
        self._pending: deque[DecodeSequence] = deque()  # decode thread only, as is everything below
        self._batches: list[RunningBatch] = []
        self._prefilling: list[DecodeSequence] = []  # the group being prefilled (in neither line above)
        self._wakeup = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"decode-{self._model_id}", daemon=True)
        self._thread.start()

    def submit(self, sequence: DecodeSequence) -> None:
        with self._wakeup:
            if self._stopping or self._thread is None:
                raise NotReady("model engine is stopped")
            self._incoming.append(sequence)
            self._wakeup.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every sequence as cancelled and end the thread (blocking)."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        with torch.inference_mode():  # thread-local: must be entered in this thread
            while self._take_work():
                try:
                    self._round()
                except Exception as error:  # outside any one sequence (e.g. memory while joining): fail all, go on
                    self._fail_all(error)
        with self._wakeup:
            leftovers = [*self._pending, *self._incoming]
            self._incoming.clear()
        leftovers += [sequence for batch in self._batches for sequence in batch.sequences]
        self._pending.clear()
        self._batches.clear()
        for sequence in leftovers:
            sequence.finish("cancelled")

    def _round(self) -> None:
        self._drop_cancelled()
        self._prefill_arrivals()
        self._decode_step()

    def _fail_all(self, error: BaseException) -> None:
        running = [sequence for batch in self._batches for sequence in batch.sequences]
        for sequence in [*self._prefilling, *self._pending, *running]:
            if not sequence.finished:
                _fail(sequence, error)
        self._prefilling, self._batches = [], []
        self._pending.clear()

    def _take_work(self) -> bool:
        """Wait for work; move arrivals in line for prefill. False once stopping."""
        with self._wakeup:
            while not self._stopping and not self._incoming and not self._pending and not self._batches:
                self._wakeup.wait()
            self._pending.extend(self._incoming)
            self._incoming.clear()
            return not self._stopping

    def _drop_cancelled(self) -> None:
        for batch in self._batches:
            batch.retain(_still_wanted)
        self._pending = deque(sequence for sequence in self._pending if _still_wanted(sequence))
        self._batches = [batch for batch in self._batches if batch.sequences]

    def _prefill_arrivals(self) -> None:
        if not self._pending:
            return
        self._prefilling = self._next_group()
        for sequence in self._prefilling:
            sequence.prefill_started()
        self._prefill(self._prefilling)
        self._prefilling = []

    def _next_group(self) -> list[DecodeSequence]:
        """Waiting sequences in arrival order: at least one, more while their padded prompts fit the budget."""
        group = [self._pending.popleft()]
        width = group[0].prompt_length
        while self._runner.batchable and self._pending:
            width = max(width, self._pending[0].prompt_length)
            if (len(group) + 1) * width > self._max_prefill_tokens:
                break
            group.append(self._pending.popleft())
        return group

    def _prefill(self, group: list[DecodeSequence]) -> None:
        """Prefill the group in one forward pass; each takes its first token; the unfinished join a batch."""
        try:
            arrivals, logits = self._runner.prefill([sequence.prompt_ids for sequence in group])
        except Exception as error:  # e.g. out of memory, or one bad prompt: try each alone
            if len(group) == 1:
                _fail(group[0], error)
                return
            for sequence in group:
                self._prefill([sequence])
            return
        rows = [row for row, sequence in enumerate(group) if not _accept(sequence, logits[row])]
        arrivals.keep(rows)
        if rows:
            self._batch_to_join().extend([group[row] for row in rows], arrivals)

    def _batch_to_join(self) -> RunningBatch:
        if self._runner.batchable and self._batches:
            return self._batches[0]
        self._batches.append(RunningBatch())
        return self._batches[-1]

    def _decode_step(self) -> None:
        for batch in self._batches:
            self._step(batch)
        self._batches = [batch for batch in self._batches if batch.sequences]

    def _step(self, batch: RunningBatch) -> None:
        """One forward pass for the whole batch; each sequence takes its token, the finished ones leave."""
        try:
            logits = self._runner.decode(batch.kv, [sequence.last_token for sequence in batch.sequences])
        except Exception as error:  # the pass is shared: every sequence in it fails
            for sequence in batch.sequences:
                _fail(sequence, error)
            batch.retain(lambda sequence: False)
            return
        metrics.BATCH_SIZE.labels(self._model_id).observe(len(batch.sequences))
        finished = {id(sequence) for row, sequence in enumerate(batch.sequences) if _accept(sequence, logits[row])}
        batch.retain(lambda sequence: id(sequence) not in finished)


def _still_wanted(sequence: DecodeSequence) -> bool:
    """False (and the sequence finished as cancelled) once its caller has gone."""
    return not (sequence.cancelled and sequence.finish("cancelled"))


def _accept(sequence: DecodeSequence, logits: torch.Tensor) -> bool:
    try:
        return sequence.accept(logits)
    except Exception as error:
        _fail(sequence, error)
        return True


def _fail(sequence: DecodeSequence, error: BaseException) -> None:
    log.error("decode step failed: %s", type(error).__name__)
    sequence.fail(error)
