"""Conversation sessions: an async store protocol, kept in this process (here) or in Redis (`redis_sessions`).

A session is named within its owner (the caller's principal): the same id used by another owner
is that owner's own session, so no answer reveals whether another owner uses an id, and a client
may name its sessions itself. Sessions expire after a TTL renewed by each turn, and keep at most
`max_turns` turns (the oldest are dropped).
"""
from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from libs.errors import NotFound

STORE_NAME = "session store"


class SessionNotFound(NotFound):
    default_message = "session not found"


@dataclass(frozen=True)
class Turn:
    """One exchange: the user's message and the assistant's reply (both de-identified)."""

    user: str
    assistant: str


@dataclass(frozen=True)
class Session:
    session_id: str
    owner: str
    system_prompt: str | None
    turns: tuple[Turn, ...] = ()


def new_session_id() -> str:
    return uuid.uuid4().hex


class SessionStore(Protocol):
    async def get(self, session_id: str, owner: str) -> Session | None:
        """The owner's session of that name, or None when absent or expired."""

    async def append(self, session_id: str, owner: str, turn: Turn, system_prompt: str | None) -> Session:
        """Add a turn (creating the owner's session of that name when new), keep the newest turns, renew the TTL."""

    async def delete(self, session_id: str, owner: str) -> bool:
        """True when the owner's session existed and is gone now."""

    async def check(self) -> None:
        """StoreUnavailable when the store cannot be used now (asked before a new session's first turn)."""

    async def close(self) -> None: ...


class InMemorySessionStore:
    """Sessions in this process: an LRU of at most `max_sessions` entries with a TTL."""

    def __init__(self, ttl_seconds: float, max_turns: int, max_sessions: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._max_turns = max_turns
        self._max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[tuple[str, str], tuple[Session, float]] = OrderedDict()

    async def get(self, session_id: str, owner: str) -> Session | None:
        return self._live((owner, session_id))

    async def append(self, session_id: str, owner: str, turn: Turn, system_prompt: str | None) -> Session:
        key = (owner, session_id)
        current = self._live(key) or Session(session_id, owner, system_prompt)
        session = replace(current, system_prompt=system_prompt, turns=(*current.turns, turn)[-self._max_turns:])
        self._sessions[key] = (session, self._clock() + self._ttl)
        self._sessions.move_to_end(key)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        return session

    async def delete(self, session_id: str, owner: str) -> bool:
        return self._live((owner, session_id)) is not None and self._sessions.pop((owner, session_id)) is not None

    async def check(self) -> None:
        """Always usable (it is this process)."""

    async def close(self) -> None:
        self._sessions.clear()

    def _live(self, key: tuple[str, str]) -> Session | None:
        entry = self._sessions.get(key)
        if entry is None:
            return None
        session, expires_at = entry
        if self._clock() >= expires_at:
            del self._sessions[key]
            return None
        return session
