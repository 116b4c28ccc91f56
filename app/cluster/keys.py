"""Every key and channel Taskcast writes in Redis, named in one place (docs/scale-out.md lists
each one with its lifetime).

All of them start with `PREFIX`, so one Redis (or one database of it) can hold other data too.
Keys of one stream or task share a hash tag (`{...}`), so a Redis Cluster keeps them on one
shard and a script may touch them together.
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "taskcast:"


def node(node_id: str) -> bytes:
    """A live node's key: its description, expiring unless the node renews it (`NODE_TTL`)."""
    return f"{PREFIX}node:{node_id}".encode()


#: the pattern of every node key, for listing the live nodes
NODES_PATTERN: Final = f"{PREFIX}node:*".encode()


def session(digest: str) -> bytes:
    """A browser session of the token login, by the SHA-256 of its cookie's id: the user; it
    expires with the session (`Settings.session_seconds`) or is deleted on sign-out."""
    return f"{PREFIX}session:{digest}".encode()
