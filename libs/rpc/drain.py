"""A server's in-flight calls and its drain: refuse new calls, let running ones finish, end the rest.

On SIGTERM a service stops taking new calls (they get UNAVAILABLE at once, so a client or Envoy can
go elsewhere), lets those running finish for up to `APP_DRAIN_SECONDS`, then interrupts what is
left: each interrupted call fails with `NotReady` inside its handler, so the error interceptor
answers it honestly (UNAVAILABLE, and an in-band error chunk on a public stream) before the
server stops. Health checks and reflection are not calls to drain.
"""
from __future__ import annotations

import asyncio
import contextlib

from libs.errors import NotReady

DRAINING_MESSAGE = "service is shutting down, retry later"
INTERRUPTED_MESSAGE = "service shut down before the call completed (drain deadline)"


class InFlightCall:
    """One call being handled; `run` marks the stretches where interrupting it is safe."""

    def __init__(self, task: asyncio.Task | None) -> None:
        self._task = task
        self._inside = False
        self.interrupted = False

    def interrupt(self) -> None:
        """End the call: at once if it is awaiting its handler, else when it next enters it."""
        self.interrupted = True
        if self._inside and self._task is not None:
            self._task.cancel()

    async def run(self, awaitable):
        """Await a step of the handler; NotReady if the drain deadline interrupts it (or already did)."""
        if self.interrupted:
            raise NotReady(INTERRUPTED_MESSAGE)
        self._inside = True
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not self.interrupted:
                raise
            if self._task is not None:
                self._task.uncancel()
            raise NotReady(INTERRUPTED_MESSAGE) from None
        finally:
            self._inside = False


class Drain:
    """The in-flight calls of one server, and whether it still takes new ones."""

    def __init__(self) -> None:
        self._calls: set[InFlightCall] = set()
        self._idle: asyncio.Event | None = None
        self.draining = False

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    def admit(self) -> InFlightCall:
        """Register a new call; NotReady once the server drains."""
        if self.draining:
            raise NotReady(DRAINING_MESSAGE)
        call = InFlightCall(asyncio.current_task())
        self._calls.add(call)
        return call

    def leave(self, call: InFlightCall) -> None:
        self._calls.discard(call)
        if not self._calls and self._idle is not None:
            self._idle.set()

    async def drain(self, seconds: float) -> int:
        """Refuse new calls and wait up to `seconds` for the running ones; how many are still running."""
        self.draining = True
        await self.wait_idle(seconds)
        return self.in_flight

    def interrupt(self) -> None:
        """End every call still running (each fails with NotReady in its handler)."""
        for call in list(self._calls):
            call.interrupt()

    async def wait_idle(self, seconds: float) -> None:
        if not self._calls:
            return
        self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), seconds)
