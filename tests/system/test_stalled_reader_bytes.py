"""A reader that never reads is bounded in bytes, not only in events: the server cuts it off
once it holds `subscriber_max_bytes`, aborts its connection when it does not take the close
frame either, and lets go of what it held."""

from __future__ import annotations

import asyncio

from taskcast import tasks
from taskcast.web.keys import HUB, SOCKETS
from tests.conftest import ClientFactory
from tests.support.eventually import eventually
from tests.support.wsclient import stalled_reader

BOUND = 4 * 1024 * 1024


async def test_a_stalled_reader_of_huge_events_is_bounded_in_bytes_and_dropped_promptly(
    make_client: ClientFactory,
) -> None:
    client = await make_client(subscriber_max_bytes=BOUND)
    hub = client.app[HUB]
    peer = stalled_reader(client.host, client.port, "aio__huge")
    try:
        await eventually(lambda: hub.subscriber_count == 1, 5, "the stalled reader waits")
        task_id = tasks.async_task(
            "tests.support.sample_tasks.identity_events",
            task_publish_id="huge",
            count=30,
            text="x" * (1024 * 1024),
        )
        most = 0
        while not (record := tasks.fetch(task_id)) or not record.status.is_final:
            stream = hub.get("aio__huge")
            if stream is not None:
                for subscription in stream.subscribers:
                    most = max(most, subscription.pending_bytes)
            await asyncio.sleep(0.005)
        assert most <= BOUND, f"a stalled reader held {most} bytes"
        stream = hub.get("aio__huge")
        assert stream is not None and not stream.subscribers, "the stalled reader was not cut off"
        # It does not take its close frame either: aborted within the close timeout, not kept.
        await eventually(lambda: len(client.app[SOCKETS]) == 0, 5, "the socket is let go")
    finally:
        peer.close()
