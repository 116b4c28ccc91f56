"""The console's live feed: who sees which task, and a console that falls behind."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from taskcast.records import TaskRecord
from taskcast.web.feed import MAX_PENDING, MAX_PENDING_BYTES
from taskcast.web.keys import FEED
from tests.conftest import ClientFactory
from tests.web.test_embed import UsersByHeader

Client = TestClient[Any, Any]


async def frames_until(ws: aiohttp.ClientWebSocketResponse, task_id: str) -> list[str]:
    """The ids the feed sends until `task_id` comes."""
    seen: list[str] = []
    async with asyncio.timeout(10):
        while task_id not in seen:
            frame = await ws.receive_json()
            seen += [task["id"] for task in frame["tasks"]]
    return seen


async def test_each_console_hears_only_of_tasks_its_user_may_see(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client(access=UsersByHeader())
    feed = client.app[FEED]
    ann = await client.ws_connect("/api/feed", headers={"X-User": "ann"})
    bob = await client.ws_connect("/api/feed", headers={"X-User": "bob"})
    admin = await client.ws_connect("/api/feed", headers={"X-User": "admin"})
    assert len(feed) == 3
    feed.publish(TaskRecord(id="ann-1", name="n", func="f", started_by="ann"))
    feed.publish(TaskRecord(id="bob-1", name="n", func="f", started_by="bob"))
    # each frame is sent after both records are in, so a leak shows in the same frames
    assert "bob-1" not in await frames_until(ann, "ann-1")
    assert "ann-1" not in await frames_until(bob, "bob-1")
    assert {"ann-1", "bob-1"} <= set(await frames_until(admin, "bob-1"))
    for ws in (ann, bob, admin):
        await ws.close()


async def test_a_console_that_falls_behind_is_told_to_reload(make_client: ClientFactory) -> None:
    client: Client = await make_client()
    ws = await client.ws_connect("/api/feed")
    feed = client.app[FEED]
    # more changed tasks than a socket may hold, in one step of the loop: its sender has had
    # no turn to send any of them
    for n in range(MAX_PENDING + 1):
        feed.publish(TaskRecord(id=f"t{n}", name="n", func="f"))
    async with asyncio.timeout(10):
        assert await ws.receive_json() == {"reload": True}
        closing = await ws.receive()
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER
    assert closing.extra == "too far behind: reload"


async def test_a_console_behind_by_more_bytes_than_the_bound_is_told_to_reload(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client()
    ws = await client.ws_connect("/api/feed")
    feed = client.app[FEED]
    big_group = "g" * 100_000  # a summary of about 100 kB: far fewer tasks than MAX_PENDING
    count = MAX_PENDING_BYTES // 100_000 + 1
    assert count < MAX_PENDING
    for n in range(count):
        feed.publish(TaskRecord(id=f"t{n}", name="n", func="f", group=big_group))
    async with asyncio.timeout(10):
        assert await ws.receive_json() == {"reload": True}
        closing = await ws.receive()
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER


async def test_changes_within_the_bounds_arrive_as_the_list_shows_them(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client()
    ws = await client.ws_connect("/api/feed")
    feed = client.app[FEED]
    record = TaskRecord(id="t1", name="n", func="f", group="g" * 100_000, result="secret")
    feed.publish(record)
    feed.publish(record.replace(name="renamed"))  # the latest summary of a task replaces its last
    async with asyncio.timeout(10):
        frame = await ws.receive_json()
    assert [task["name"] for task in frame["tasks"]] == ["renamed"]
    assert frame["tasks"][0]["group"] == "g" * 100_000
    assert "result" not in frame["tasks"][0]  # the list's summary, not the whole record
