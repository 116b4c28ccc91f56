"""The engine setting, the `--engine` flag and a node's Redis connection, against a real Redis."""

from __future__ import annotations

import sys

import pytest

from taskcast import cli
from taskcast.cluster.connection import redis_client, safe_url
from taskcast.errors import TaskcastError
from taskcast.settings import Settings
from tests.support.redis_server import RedisServer


@pytest.mark.parametrize(
    "engine",
    ["memory", "redis://127.0.0.1:6379/0", "rediss://cache.example:6380/2", "unix:///run/r.sock"],
)
def test_the_engine_is_memory_or_a_redis_url(engine: str) -> None:
    assert Settings(engine=engine).engine == engine


@pytest.mark.parametrize(
    ("engine", "words"),
    [
        ("postgres://db/1", "must be 'memory' or a Redis URL"),
        ("Memory", "must be 'memory' or a Redis URL"),
        ("redis://", "names no host"),
        ("unix://", "names no socket path"),
    ],
)
def test_a_bad_engine_is_refused_with_what_is_wrong(engine: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Settings(engine=engine)


def test_the_engine_flag_names_itself_when_wrong() -> None:
    assert cli.checked_settings(cli.parse_args(["--engine", "redis://h:1/0"])).engine == (
        "redis://h:1/0"
    )
    with pytest.raises(SystemExit, match=r"^taskcast: --engine: engine must be"):
        cli.checked_settings(cli.parse_args(["--engine", "amqp://h"]))


def test_a_password_never_reaches_a_log() -> None:
    assert safe_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert safe_url("redis://user:s3cret@h/0") == "redis://user:***@h/0"
    assert safe_url("redis://h:6379/0") == "redis://h:6379/0"


@pytest.mark.parametrize("over", ["tcp", "unix"])
async def test_a_node_reaches_redis_over_tcp_and_a_unix_socket(
    redis_server: RedisServer, over: str
) -> None:
    client = redis_client(redis_server.url if over == "tcp" else redis_server.unix_url)
    try:
        assert await client.ping()
        await client.set(b"taskcast:probe", b"1")
        assert await client.get(b"taskcast:probe") == b"1"
        info = await client.info("server")
        assert int(str(info["redis_version"]).split(".")[0]) >= 7
    finally:
        await client.aclose()


def test_the_redis_engine_without_redis_py_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)  # as if redis-py were not installed
    with pytest.raises(TaskcastError, match=r"needs redis-py: pip install 'taskcast\[redis\]'"):
        redis_client("redis://127.0.0.1:6379/0")
