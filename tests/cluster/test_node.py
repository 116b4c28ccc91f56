"""A node of the Redis engine: it announces itself, leaves, says in the health check whether it
reaches Redis, and reaches it again after an outage."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from taskcast.cluster import keys
from taskcast.cluster.node import NODE_TTL, Node
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
