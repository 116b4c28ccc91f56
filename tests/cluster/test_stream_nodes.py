"""The event plane with real nodes: `python run.py --engine URL` processes on one redis-server,
watched over the channel as a browser would. Start on A, watch on B, late join on C; Redis
killed and restarted without its data mid-stream; Redis paused for 5 s mid-stream."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from taskcast.web.channel import PATH as CHANNEL
from tests.support.eventually import eventually, eventually_awaited
from tests.support.nodes import Launch, NodeServer
from tests.support.redis_server import RedisServer

#: seconds a whole stream may take to reach a watcher
STREAM_TIMEOUT = 60.0


class Watcher:
    """One channel socket following a stream; its frames as they come."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.done: asyncio.Task[None] | None = None

    @property
    def seqs(self) -> list[int]:
        return [frame["seq"] for frame in self.frames if frame["status"] == "event"]

    @property
    def starts(self) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["status"] == "start"]

    async def finished(self) -> list[dict[str, Any]]:
        assert self.done is not None
        await asyncio.wait_for(self.done, STREAM_TIMEOUT)
        return self.frames


def watch(session: aiohttp.ClientSession, node: NodeServer, subscribe: dict[str, Any]) -> Watcher:
    watcher = Watcher()

    async def follow() -> None:
        async with session.ws_connect(node.url + CHANNEL) as ws:
            await ws.send_json(subscribe)
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    watcher.frames.append(json.loads(message.data))

    watcher.done = asyncio.create_task(follow())
    return watcher


def assert_whole(frames: list[dict[str, Any]], count: int) -> None:
    """start, then events 1..count in order with no gap and no repeat, then stop."""
    assert frames[0]["status"] == "start" and frames[-1]["status"] == "stop", frames[-3:]
    seqs = [frame["seq"] for frame in frames if frame["status"] == "event"]
    assert seqs == list(range(1, count + 1)), frames[:3]
    data = [frame["data"] for frame in frames if frame["status"] == "event"]
    assert data == [f"<li>{n}</li>===>>.data" for n in range(count)]
    assert frames[-1]["state"] == "success"


async def test_start_on_a_watch_on_b_join_late_on_c(
    cluster_nodes: Launch, session: aiohttp.ClientSession
) -> None:
    a, b, c = [await cluster_nodes(name) for name in "abc"]
    before = watch(session, b, {"id": "aio__x1"})  # nothing runs yet: it waits
    await a.start_task("async_events", task_publish_id="x1", count=150, pause=0.005)
    await eventually(lambda: len(before.seqs) >= 20, timeout=20, what="events on b")
    during = watch(session, c, {"id": "aio__x1"})
    assert_whole(await before.finished(), 150)
    assert_whole(await during.finished(), 150)
    late = watch(session, c, {"id": "aio__x1"})
    assert_whole(await late.finished(), 150)
    epoch = before.starts[0]["epoch"]
    resumed = watch(session, b, {"id": "aio__x1", "after": 140, "epoch": epoch})
    frames = await resumed.finished()
    assert frames[0] == {"status": "start", "epoch": epoch}
    assert [frame["seq"] for frame in frames if frame["status"] == "event"] == list(range(141, 151))


async def test_redis_restarted_without_its_data_mid_stream(
    cluster_nodes: Launch, redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    a, b = [await cluster_nodes(name) for name in "ab"]
    await a.start_task("async_events", task_publish_id="x2", count=300, pause=0.02)
    through = watch(session, b, {"id": "aio__x2"})
    await eventually(lambda: len(through.seqs) >= 30, timeout=20, what="events on b")
    first_epoch = through.starts[0]["epoch"]
    seen = len(through.seqs)
    redis_server.restart()
    # A client on b that resumes with the epoch it saw learns that the history was replaced,
    # once a has written its copy again (until then b still serves the old one).
    resume = {"id": "aio__x2", "after": seen, "epoch": first_epoch}

    async def resumes_with_a_new_epoch() -> bool:
        async with session.ws_connect(b.url + CHANNEL) as ws:
            await ws.send_json(resume)
            first = json.loads((await ws.receive(timeout=10)).data)
            return bool(first["epoch"] != first_epoch)

    await eventually_awaited(resumes_with_a_new_epoch, timeout=30, what="a new epoch on b")
    resumer_frames = await watch(session, b, resume).finished()
    assert resumer_frames[0]["epoch"] != first_epoch
    assert_whole(resumer_frames, 300)  # the whole run again, from the new copy
    assert_whole(await through.finished(), 300)  # and the one that stayed missed nothing


async def test_redis_paused_for_five_seconds_mid_stream(
    cluster_nodes: Launch, redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    a, b = [await cluster_nodes(name) for name in "ab"]
    await a.start_task("async_events", task_publish_id="x3", count=500, pause=0.02)
    on_a = watch(session, a, {"id": "aio__x3"})
    on_b = watch(session, b, {"id": "aio__x3"})
    await eventually(lambda: len(on_b.seqs) >= 20, timeout=20, what="events on b")
    with redis_server.paused():
        paused_at = time.monotonic()
        before = len(on_a.seqs)
        # A's own subscribers never wait for Redis.
        await eventually(lambda: len(on_a.seqs) >= before + 50, timeout=5, what="events on a")
        await asyncio.sleep(max(0.0, 5 - (time.monotonic() - paused_at)))  # the pause itself
    assert_whole(await on_a.finished(), 500)
    assert_whole(await on_b.finished(), 500)
