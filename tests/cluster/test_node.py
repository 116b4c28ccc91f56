"""A node of the Redis engine: it announces itself, leaves, says in the health check whether it
reaches Redis, and reaches it again after an outage."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from taskcast.cluster import keys
from taskcast.cluster.node import LEAVE_TIMEOUT, NODE_TTL, Node
from taskcast.core import Core
from taskcast.settings import Settings
from taskcast.spec import build_spec
from taskcast.web.factory import create_app
from tests.support.eventually import eventually_awaited
from tests.support.redis_server import RedisServer, free_port


async def test_a_node_is_known_while_it_runs_and_forgotten_when_it_stops(
    redis_server: RedisServer,
) -> None:
    first, second = Node(redis_server.url), Node(redis_server.unix_url)
    await first.start()
    await second.start()
    try:
        assert await first.alive_nodes() == sorted([first.id, second.id])
        ttl = await first.redis.pttl(keys.node(first.id))
        assert 0 < ttl <= NODE_TTL * 1000
    finally:
        await second.close()
    assert await first.alive_nodes() == [first.id]
    await first.close()


async def test_a_node_closes_its_connections_even_when_its_renewal_will_not_stop(
    redis_server: RedisServer,
) -> None:
    # redis-py can swallow a cancel while it reconnects; the close must not wait for ever on
    # it, and must close the connections whatever happens, or they are dropped still open
    # when the garbage collector gets to them.
    node = Node(redis_server.url)
    await node.start()
    assert node._renewer is not None
    node._renewer.cancel()
    stubborn_stop = asyncio.Event()

    async def stubborn() -> None:
        while not stubborn_stop.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue  # as a renewal caught in a reconnect would

    node._renewer = stubborn_task = asyncio.create_task(stubborn())
    await node.redis.ping()  # a connection in the pool
    pool = node.redis.connection_pool
    try:
        await asyncio.wait_for(node.close(), timeout=LEAVE_TIMEOUT + 3)
        connections = [*pool._available_connections, *pool._in_use_connections]
        assert connections and not any(c.is_connected for c in connections)
        other = Node(redis_server.url)  # it left the cluster too
        await other.start()
        try:
            assert await other.alive_nodes() == [other.id]
        finally:
            await other.close()
    finally:
        stubborn_stop.set()
        await stubborn_task


async def test_a_node_that_cannot_reach_redis_does_not_start_and_names_where() -> None:
    node = Node(f"redis://:secret@127.0.0.1:{free_port()}/0")
    with pytest.raises(ConnectionError, match=r"Redis at redis://:\*\*\*@127\.0\.0\.1:\d+/0"):
        await node.start()


async def test_health_says_which_engine_and_whether_redis_is_reached(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("taskcast.cluster.node.RENEW_EVERY", 0.05)
    memory = create_app(database=str(tmp_path / "m.sqlite3"), process_workers=1)
    async with TestClient(TestServer(memory)) as client:
        health = await (await client.get("/api/health")).json()
    assert health["engine"] == {"kind": "memory"} and health["status"] == "ok"

    app = create_app(
        database=str(tmp_path / "r.sqlite3"), process_workers=1, engine=redis_server.url
    )
    async with TestClient(TestServer(app)) as client:
        health = await (await client.get("/api/health")).json()
        engine = health["engine"]
        assert engine["kind"] == "redis" and engine["url"] == redis_server.url
        assert engine["reachable"] is True and engine["last_error"] is None
        assert health["status"] == "ok"

        async def status_is(status: str) -> bool:
            return bool((await (await client.get("/api/health")).json())["status"] == status)

        redis_server.kill()
        await eventually_awaited(
            lambda: status_is("engine_unreachable"), 10, "health to say Redis is unreachable"
        )
        answer = await client.get("/api/health")
        assert answer.status == 200  # it still serves what it has
        assert (await answer.json())["engine"]["last_error"]

        redis_server.start()
        await eventually_awaited(lambda: status_is("ok"), 10, "health to say Redis is back")


async def test_a_node_stops_even_while_redis_hangs(
    tmp_path: Path,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each part of the engine gets CLUSTER_CLOSE_TIMEOUT to write its last changes; a Redis
    that answers nothing (SIGSTOP) does not keep the server from stopping."""
    monkeypatch.setattr("taskcast.core.CLUSTER_CLOSE_TIMEOUT", 0.5)
    core = Core(
        Settings(database=str(tmp_path / "db.sqlite3"), process_workers=1, engine=redis_server.url),
        schedules=False,
    )
    await core.start()
    task_id = core.runner.submit(build_spec("tests.support.sample_tasks.async_identity", (1,), {}))
    assert (await core.runner.wait(task_id, timeout=10)).result == 1
    with redis_server.paused():
        began = time.monotonic()
        await asyncio.wait_for(core.close(grace=0), 30)
        assert time.monotonic() - began < 15
    assert "did not reach Redis" in caplog.text  # and says what it stopped without
