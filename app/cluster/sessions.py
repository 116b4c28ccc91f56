"""The login's browser sessions in Redis, shared by every node of a cluster (a `SessionStore`).

A browser signed in on one node is signed in on all of them, so the load balancer needs no
sticky sessions, and signing out on any node ends the session everywhere. Each session is one
key that expires with the session (`Settings.session_seconds`). The key is named by a hash of
the cookie's id, not the id itself, so what Redis holds (a dump, a replica, `MONITOR`) cannot be
replayed as a cookie. `Settings.max_sessions` does not apply: Redis bounds them by expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from taskcast.cluster import keys
from taskcast.cluster.connection import engine_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis


def session_key(session_id: str) -> bytes:
    return keys.session(hashlib.sha256(session_id.encode()).hexdigest())


class RedisSessions:
    """Sessions of `lifetime` seconds, kept in Redis by `redis`."""

    def __init__(self, redis: Redis, lifetime: float) -> None:
        self.redis = redis
        self.lifetime = lifetime

    async def open(self, user: str) -> str:
        session_id = secrets.token_urlsafe(32)
        async with engine_errors("opening a session"):
            await self.redis.set(
                session_key(session_id), user.encode(), px=int(self.lifetime * 1000)
            )
        return session_id

    async def user(self, session_id: str) -> str | None:
        async with engine_errors("reading a session"):
            found = await self.redis.get(session_key(session_id))
        # The client is made with decode_responses=False: values come back as bytes.
        return found.decode() if isinstance(found, bytes) else None

    async def close(self, session_id: str) -> bool:
        async with engine_errors("ending a session"):
            return bool(await self.redis.delete(session_key(session_id)))
