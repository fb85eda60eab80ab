"""The one thread that owns the model: it advances every admitted sequence by a token per round.

Sequences take turns (round robin), one forward pass each, so several streams progress
together and a cancelled one is dropped at its next turn. Continuous batching replaces the
per-sequence step with one batched forward over the same list of sequences.
"""
from __future__ import annotations

import logging
import threading
from collections import deque

import torch

from libs.errors import NotReady
from libs.llm.runner import ModelRunner
from libs.llm.sequence import DecodeSequence

log = logging.getLogger(__name__)


class DecodeLoop:
    def __init__(self, runner: ModelRunner, name: str) -> None:
        self._runner = runner
        self._name = name
        self._incoming: deque[DecodeSequence] = deque()
        self._active: list[DecodeSequence] = []
        self._wakeup = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"decode-{self._name}", daemon=True)
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
            while self._next_round():
                for sequence in list(self._active):
                    if self._advance(sequence):
                        self._active.remove(sequence)
        with self._wakeup:
            leftovers = [*self._active, *self._incoming]
            self._active.clear()
            self._incoming.clear()
        for sequence in leftovers:
            sequence.finish("cancelled")

    def _next_round(self) -> bool:
        """Wait for work; move new sequences in. False once stopping."""
        with self._wakeup:
            while not self._stopping and not self._incoming and not self._active:
                self._wakeup.wait()
            self._active.extend(self._incoming)
            self._incoming.clear()
            return not self._stopping

    def _advance(self, sequence: DecodeSequence) -> bool:
        if sequence.cancelled:
            return sequence.finish("cancelled")
        try:
            return sequence.step(self._runner)
        except Exception as error:  # e.g. out of memory: this sequence fails, the loop goes on
            log.error("decode step failed: %s", type(error).__name__)
            sequence.fail(error)
            return True
