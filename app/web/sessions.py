"""Browser sessions of the shared-token login: random ids kept on the server, with an expiry.

The cookie holds only a random id; who it belongs to and until when lives here. Signing out
removes the entry, and an entry past its expiry is refused and dropped whatever the browser
keeps. `Sessions` keeps them in this process's memory, which suits Taskcast's single process: a
restart (with the same token or another one) signs everyone out. On the Redis engine the nodes
share them instead (`taskcast.cluster.sessions`), so a browser signed in on one node is signed
in on every node behind the load balancer. Both are a `SessionStore`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)


class SessionStore(Protocol):
    """Where the login's sessions live; async, as a shared store answers over the network."""

    async def open(self, user: str) -> str:
        """A new session for `user`; its id goes into the cookie."""
        ...

    async def user(self, session_id: str) -> str | None:
        """Whose session this is, or None when it is unknown, ended or expired."""
        ...

    async def close(self, session_id: str) -> bool:
        """End a session (signing out); False when it was not open."""
        ...


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    #: `Sessions.clock()` time after which the session is refused
    expires: float


class Sessions:
    """Open sessions by id, oldest first; at most `limit`, each for `lifetime` seconds."""

    def __init__(
        self, lifetime: float, limit: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lifetime = lifetime
        self.limit = limit
        #: replaceable in tests; monotonic, so a change of the wall clock ends no session
        self.clock = clock
        self._open: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._open)

    async def open(self, user: str) -> str:
        """A new session for `user`; its id goes into the cookie."""
        self._sweep()
        while len(self._open) >= self.limit:
            # The oldest is closest to its end; who holds it signs in again.
            oldest = next(iter(self._open))
            del self._open[oldest]
            logger.warning(
                "sessions: %d open, the limit; ended the oldest to open a new one", self.limit
            )
        session_id = secrets.token_urlsafe(32)
        self._open[session_id] = Session(user, self.clock() + self.lifetime)
        return session_id

    async def user(self, session_id: str) -> str | None:
        """Whose session this is, or None when it is unknown, ended or expired."""
        session = self._open.get(session_id)
        if session is None:
            return None
        if self.clock() >= session.expires:
            del self._open[session_id]
            return None
        return session.user

    async def close(self, session_id: str) -> bool:
        """End a session (signing out); False when it was not open."""
        return self._open.pop(session_id, None) is not None

    def _sweep(self) -> None:
        """Drop expired sessions; they expire in the order they were opened."""
        now = self.clock()
        while self._open:
            session_id, session = next(iter(self._open.items()))
            if now < session.expires:
                return
            del self._open[session_id]
