"""Bounded admission: up to N requests run, up to M wait in FIFO order, the next one is refused at once."""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from libs.errors import Overloaded


class Admission:
    """Slots for running sequences plus a bounded waiting line. Use from one event loop only."""

    def __init__(self, max_running: int, max_waiting: int, on_change: Callable[[int, int], None] | None = None) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self._running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._on_change = on_change or (lambda running, waiting: None)

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting in line if needed; Overloaded when the line is full too."""
        if self._running < self.max_running and not self._waiters:
            self._running += 1
            self._changed()
            return
        if len(self._waiters) >= self.max_waiting:
            raise Overloaded(
                f"model busy: {self.max_running} requests running and {self.max_waiting} waiting (the limits)"
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._changed()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as the caller gave up
            elif waiter in self._waiters:  # release() may already have skipped it
                self._waiters.remove(waiter)
                self._changed()
            raise

    def release(self) -> None:
        """Free a slot: hand it to the first live waiter, or give it back."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; the running count is unchanged
                self._changed()
                return
        self._running -= 1
        self._changed()

    def _changed(self) -> None:
        self._on_change(self._running, len(self._waiters))
