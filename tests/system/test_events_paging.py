"""`GET /api/tasks/{id}/events` answers in pages bounded in bytes as well as in events, from the
hub and from the store alike, and pages through the whole stream with `after`."""

from __future__ import annotations

from typing import Any

from taskcast import tasks
from taskcast.web.api import MAX_EVENTS_PAGE_BYTES
from tests.conftest import ClientFactory

MIB = 1024 * 1024


async def all_pages(client: Any, task_id: str) -> tuple[list[int], int]:
    """Every event's seq, paging with next_after; and the largest body seen."""
    seqs: list[int] = []
    after, largest = 0, 0
    while True:
        response = await client.get(f"/api/tasks/{task_id}/events?after={after}")
        assert response.status == 200
        body = await response.read()
        largest = max(largest, len(body))
        page = await response.json()
        if not page["events"]:
            return seqs, largest
        seqs += [event["seq"] for event in page["events"]]
        after = page["next_after"]


async def test_a_stream_of_huge_events_is_served_in_pages_bounded_in_bytes(
    make_client: ClientFactory,
) -> None:
    client = await make_client(history_max_bytes=64 * MIB, kept_streams=1)
    task_id = tasks.async_task(
        "tests.support.sample_tasks.identity_events",
        task_publish_id="pages",
        count=12,
        text="x" * MIB,
    )
    assert await tasks.wait_result(task_id, timeout=20) == 12
    seqs, largest = await all_pages(client, task_id)  # from the hub
    assert seqs == list(range(1, 13))
    assert largest <= MAX_EVENTS_PAGE_BYTES + MIB + 1000, f"a page of {largest} bytes"
    # Another finished stream pushes it out of memory: now it is read from the store.
    other = tasks.async_task("tests.support.sample_tasks.identity_events", task_publish_id="x")
    await tasks.wait_result(other, timeout=10)
    seqs, largest = await all_pages(client, task_id)
    assert seqs == list(range(1, 13))
    assert largest <= MAX_EVENTS_PAGE_BYTES + MIB + 1000, f"a page of {largest} bytes"
