"""Conversation sessions: an async store protocol, kept in this process (here) or in Redis (`redis_sessions`).

A session belongs to its owner (the caller's principal): for anyone else it does not exist,
so no answer reveals whether another owner's session id is in use. Sessions expire after a
TTL renewed by each turn, and keep at most `max_turns` turns (the oldest are dropped).
"""
from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from libs.errors import NotFound


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
        """The session, or None when absent, expired or another owner's."""

    async def append(self, session_id: str, owner: str, turn: Turn, system_prompt: str | None) -> Session:
        """Add a turn (creating the session when new), keep the newest turns, renew the TTL.

        SessionNotFound when the id belongs to another owner."""

    async def delete(self, session_id: str, owner: str) -> bool:
        """True when the owner's session existed and is gone now."""

    async def close(self) -> None: ...


class InMemorySessionStore:
    """Sessions in this process: an LRU of at most `max_sessions` entries with a TTL."""

    def __init__(self, ttl_seconds: float, max_turns: int, max_sessions: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._max_turns = max_turns
        self._max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, tuple[Session, float]] = OrderedDict()

    async def get(self, session_id: str, owner: str) -> Session | None:
        session = self._live(session_id)
        return session if session is not None and session.owner == owner else None

    async def append(self, session_id: str, owner: str, turn: Turn, system_prompt: str | None) -> Session:
        current = self._live(session_id) or Session(session_id, owner, system_prompt)
        if current.owner != owner:
            raise SessionNotFound()
        session = replace(current, system_prompt=system_prompt, turns=(*current.turns, turn)[-self._max_turns:])
        self._sessions[session_id] = (session, self._clock() + self._ttl)
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        return session

    async def delete(self, session_id: str, owner: str) -> bool:
        if await self.get(session_id, owner) is None:
            return False
        del self._sessions[session_id]
        return True

    async def close(self) -> None:
        self._sessions.clear()

    def _live(self, session_id: str) -> Session | None:
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        session, expires_at = entry
        if self._clock() >= expires_at:
            del self._sessions[session_id]
            return None
        return session
