"""The login's sessions on the Redis engine: shared by every node, ended everywhere at once,
expiring in Redis, and never stored as the cookie itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from taskcast.cluster import keys
from taskcast.cluster.sessions import session_key
from taskcast.web.factory import create_app
from taskcast.web.keys import CORE
from tests.support.eventually import eventually_awaited
from tests.support.redis_server import RedisServer

TOKEN = "a-token-for-the-cluster"
Client = TestClient[Any, Any]
NodeFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_node(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[NodeFactory]:
    """Start a node (its own database) on the test's Redis; all are closed after the test."""
    clients: list[Client] = []

    async def make(**settings: Any) -> Client:
        database = tmp_path / f"node{len(clients)}.sqlite3"
        app = create_app(
            database=str(database),
            process_workers=1,
            engine=redis_server.url,
            auth_token=TOKEN,
            **settings,
        )
        client: Client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def sign_in(client: Client) -> str:
    signed = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert signed.status == 303
    return signed.cookies["taskcast_session"].value


async def test_signed_in_on_one_node_is_signed_in_on_every_node(make_node: NodeFactory) -> None:
    first, second = await make_node(), await make_node()
    cookie = {"taskcast_session": await sign_in(first)}
    assert (await second.get("/api/tasks", cookies=cookie)).status == 200
    assert (await second.get("/api/tasks", cookies={"taskcast_session": "x" * 43})).status == 401


async def test_signing_out_on_one_node_ends_the_session_on_every_node(
    make_node: NodeFactory,
) -> None:
    first, second = await make_node(), await make_node()
    session = await sign_in(first)
    second.session.cookie_jar.update_cookies({"taskcast_session": session})
    assert (await second.post("/logout", allow_redirects=False)).status == 303
    refused = await first.get("/api/tasks", cookies={"taskcast_session": session})
    assert refused.status == 401


async def test_redis_holds_a_digest_of_the_cookie_that_expires_with_the_session(
    make_node: NodeFactory, redis_server: RedisServer
) -> None:
    node = await make_node(session_seconds=1)
    session = await sign_in(node)
    cluster_node = node.app[CORE].node
    assert cluster_node is not None
    client = cluster_node.redis
    stored = [key async for key in client.scan_iter(match=keys.session("*"))]
    assert stored == [session_key(session)] and session.encode() not in stored[0]
    assert 0 < await client.pttl(session_key(session)) <= 1000

    async def refused() -> bool:
        answer = await node.get("/api/tasks", cookies={"taskcast_session": session})
        return answer.status == 401

    await eventually_awaited(refused, 5, "the session to expire")


async def test_without_redis_signing_in_answers_503_and_says_why(
    make_node: NodeFactory, redis_server: RedisServer
) -> None:
    node = await make_node()
    cookie = {"taskcast_session": await sign_in(node)}
    redis_server.kill()
    answer = await node.get("/api/tasks", cookies=cookie)
    assert answer.status == 503
    body = await answer.json()
    assert body["error"] == "engine_unavailable" and "Redis" in body["detail"]
    redis_server.start()
    assert (await node.get("/api/tasks", cookies=cookie)).status == 401  # no persistence
    assert (await node.get("/api/tasks", cookies={"taskcast_session": await sign_in(node)})).ok
