"""One node of a cluster on the Redis engine: its id, its connection, and its liveness.

A node announces itself with a key that expires unless it is renewed: a node that dies (SIGKILL,
power) stops renewing it, and after `NODE_TTL` the others can tell. The node also keeps what the
health check says about Redis: reachable or not, and the last error. Plain asyncio.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from taskcast.cluster import keys
from taskcast.cluster.connection import redis_client, safe_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

#: seconds a node's key lives without renewal: how long a dead node goes unnoticed at most
NODE_TTL = 5.0
#: seconds between renewals (a third of the TTL: two renewals may fail before it expires)
RENEW_EVERY = NODE_TTL / 3
#: seconds a closing node tries to remove its key before it leaves it to expire
LEAVE_TIMEOUT = 2.0


def new_node_id() -> str:
    """host-pid-random: readable in `redis-cli keys`, unique across restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Node:
    """This process as a node of the cluster at `url`."""

    def __init__(self, url: str, node_id: str | None = None) -> None:
        self.url = url
        self.id = node_id or new_node_id()
        self.redis: Redis = redis_client(url)
        self.started_at = time.time()
        #: False from the first failed renewal until one succeeds again
        self.reachable = False
        self.last_error: str | None = None
        self._renewer: asyncio.Task[None] | None = None
        #: set by `close`: the renewal stops at its next turn even if a cancel was swallowed
        self._leaving = False

    async def start(self) -> None:
        """Reach Redis (or raise, naming the URL without its password) and announce this node."""
        try:
            await self._announce()
        except Exception as exc:
            await self.redis.aclose()
            raise ConnectionError(
                f"Redis at {safe_url(self.url)} cannot be reached: {exc}"
            ) from exc
        self._renewer = asyncio.get_running_loop().create_task(
            self._renew(), name=f"taskcast node {self.id}"
        )
        logger.info("node %s joined the cluster at %s", self.id, safe_url(self.url))

    async def close(self) -> None:
        """Stop renewing and leave: the node's key goes at once, not after its TTL."""
        self._leaving = True
        if self._renewer is not None:
            self._renewer.cancel()
            # Not waited for ever: redis-py can swallow a cancel while it reconnects (the
            # renewal then stops at its next turn), and the connections must still be closed.
            await asyncio.wait({self._renewer}, timeout=LEAVE_TIMEOUT)
            self._renewer = None
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT):
                await self.redis.delete(keys.node(self.id))
        except Exception as exc:  # Redis gone or slow: the key expires by itself
            logger.info("node %s left without removing its key: %s", self.id, exc)
        await self.redis.aclose()

    async def alive_nodes(self) -> list[str]:
        """The ids of the nodes whose keys have not expired, this one included."""
        found = [key async for key in self.redis.scan_iter(match=keys.NODES_PATTERN, count=500)]
        prefix = len(keys.node(""))
        return sorted(key[prefix:].decode() for key in found)

    def status(self) -> dict[str, Any]:
        """The health check's `engine` section."""
        return {
            "kind": "redis",
            "url": safe_url(self.url),
            "node": self.id,
            "reachable": self.reachable,
            "last_error": self.last_error,
        }

    async def _announce(self) -> None:
        about = json.dumps({"started": self.started_at, "pid": os.getpid()}).encode()
        await self.redis.set(keys.node(self.id), about, px=int(NODE_TTL * 1000))
        if not self.reachable:
            if self.last_error is not None:
                logger.warning("node %s: Redis can be reached again", self.id)
            self.reachable = True

    async def _renew(self) -> None:
        while not self._leaving:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self._announce()
            except Exception as exc:
                if self.reachable:
                    logger.error(
                        "node %s: Redis at %s cannot be reached: %s",
                        self.id,
                        safe_url(self.url),
                        exc,
                    )
                self.reachable = False
                self.last_error = f"{type(exc).__name__}: {exc}"
