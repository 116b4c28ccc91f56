"""The Redis connection of a node: made from `Settings.engine`, retried with backoff.

redis-py is an optional dependency (`pip install 'taskcast[redis]'`): it is imported here, when
a node is given a Redis URL, and a missing one is named in the error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from taskcast.errors import EngineUnavailableError, TaskcastError

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

#: seconds a command may wait for Redis before the caller gets an error
COMMAND_TIMEOUT = 5.0
#: the first and the longest pause between attempts to reach Redis again, in seconds
BACKOFF_FIRST = 0.05
BACKOFF_CAP = 2.0
#: attempts of one command before its caller gets the error
RETRIES = 3
#: connections a node opens to Redis at most (its pub/sub and blocking reads hold a few)
MAX_CONNECTIONS = 64
#: milliseconds a blocking read (a task queue, the stream of changes) waits for something new
BLOCK_MS = 1000
#: seconds a node's loop pauses before its next attempt when Redis cannot be reached
RETRY_PAUSE = 0.5


def redis_client(url: str) -> Redis:
    """An asyncio client for `url` (redis://, rediss://, unix://) that retries a failed command
    with exponential backoff and jitter, and gives up after RETRIES attempts."""
    try:
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialWithJitterBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError as exc:
        raise TaskcastError(
            "the Redis engine needs redis-py: pip install 'taskcast[redis]'"
        ) from exc
    retry = Retry(ExponentialWithJitterBackoff(cap=BACKOFF_CAP, base=BACKOFF_FIRST), RETRIES)
    # A pool that makes a caller wait for a free connection (up to COMMAND_TIMEOUT) rather than
    # fail: a burst of callers must slow down, not lose what they were doing.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=COMMAND_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        socket_connect_timeout=COMMAND_TIMEOUT,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=10,
        decode_responses=False,
    )
    client: Redis = Redis(connection_pool=pool, retry=retry)
    client.auto_close_connection_pool = True  # aclose() closes the pool too
    return client


def safe_url(url: str) -> str:
    """`url` without its password, for logs and the health check."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + host))


@contextlib.asynccontextmanager
async def engine_errors(doing: str) -> AsyncIterator[None]:
    """Turn what redis-py raises once its retries are spent into `EngineUnavailableError`,
    saying what was being done; logged, as the caller may only answer 503."""
    from redis.exceptions import RedisError

    try:
        yield
    except RedisError as exc:
        logger.error("Redis engine: %s failed: %s: %s", doing, type(exc).__name__, exc)
        raise EngineUnavailableError(
            f"{doing} failed: Redis cannot be reached ({type(exc).__name__}: {exc})"
        ) from exc
