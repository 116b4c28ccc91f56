"""The channel's closing handshake (RFC 6455 section 7): the server reads until the client's
close frame before it closes the connection, so no byte it sent is lost to a reset.

The reader runs in a thread with an event loop of its own, as a browser or a script does in a
process of its own: on the server's loop it would take turns with the server and never race it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from taskcast import tasks
from tests.support.wsclient import CHANNEL

EVENTS = "tests.support.sample_tasks.async_events"
TRIES = 60


async def read_once(url: str, stream_id: str) -> tuple[int, list[dict[str, Any]], int | None]:
    """Subscribe, ping at once, read to the close; (events, stop frames, close code)."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url)
        await ws.send_json({"id": stream_id})
        await ws.send_json({"ping": 1})
        events, stops = 0, []
        async with asyncio.timeout(10):
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(message.data)
                events += frame.get("status") == "event"
                if frame.get("status") == "stop":
                    stops.append(frame)
        return events, stops, ws.close_code


def read_many(url: str, stream_id: str, tries: int) -> list[Any]:
    """In a thread: `tries` readers one after the other; the ones that did not get it all."""

    async def all_tries() -> list[Any]:
        failures = []
        for attempt in range(tries):
            events, stops, code = await read_once(url, stream_id)
            if events != 50 or stops != [{"status": "stop", "state": "success"}] or code != 1000:
                failures.append((attempt, events, stops, code))
        return failures

    return asyncio.run(all_tries())


async def test_a_late_reader_that_pings_gets_the_whole_replay_and_close_1000_every_time(
    client: TestClient[Any, Any],
) -> None:
    task_id = tasks.async_task(EVENTS, task_publish_id="late", count=50)
    assert await tasks.wait_result(task_id, timeout=10) == 50
    url = str(client.make_url(CHANNEL)).replace("http", "ws", 1)
    failures = await asyncio.to_thread(read_many, url, "aio__late", TRIES)
    assert not failures, f"{len(failures)} of {TRIES} tries lost the end: {failures[:5]}"
