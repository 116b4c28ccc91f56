"""Following one run of a stream (taskcast.runtime.run_replay), without HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskcast.errors import UnknownTaskError
from taskcast.hub.hub import Item, Start, StreamEnd, StreamEvent, Subscription
from taskcast.runtime.run_replay import subscribe_run
from taskcast.spec import build_spec
from tests.conftest import RunnerFactory

EVENTS = "tests.support.sample_tasks.async_events"


async def collect(subscription: Subscription) -> list[Item]:
    items: list[Item] = []
    async with asyncio.timeout(10):
        while not items or not isinstance(items[-1], StreamEnd):
            batch = await subscription.next_batch()
            assert batch, "the subscription ended without a stream end"
            items.extend(batch)
    return items


def described(items: list[Item]) -> list[Any]:
    return [
        ("start", item.run_id)
        if isinstance(item, Start)
        else ("event", item.seq, item.data)
        if isinstance(item, StreamEvent)
        else ("end", item.state)
        for item in items
    ]


async def test_a_kept_run_comes_from_the_hub_and_an_evicted_one_from_the_store(
    make_runner: RunnerFactory,
) -> None:
    runner = await make_runner(kept_streams=1)
    first = runner.submit(build_spec(EVENTS, (), {"task_publish_id": "one", "count": 3}))
    await runner.wait(first, 10)
    kept = await subscribe_run(runner, first)
    from_hub = described(await collect(kept))
    runner.unsubscribe(kept)
    assert from_hub == [
        ("start", first),
        *[("event", n + 1, f"<li>{n}</li>===>>.data") for n in range(3)],
        ("end", "success"),
    ]
    # another stream's run pushes the first out of the hub: the store serves it the same way
    other = runner.submit(build_spec(EVENTS, (), {"task_publish_id": "two", "count": 1}))
    await runner.wait(other, 10)
    assert "aio__one" not in runner.hub
    stored = await subscribe_run(runner, first, after=1)
    assert described(await collect(stored)) == [from_hub[0], *from_hub[2:]]
    assert "aio__one" not in runner.hub  # read for this subscriber only, not restored


async def test_an_unknown_task_or_one_without_a_stream_is_an_error(
    make_runner: RunnerFactory,
) -> None:
    runner = await make_runner()
    with pytest.raises(UnknownTaskError):
        await subscribe_run(runner, "0" * 32)
    plain = runner.submit(build_spec("tests.support.sample_tasks.async_identity", (1,), {}))
    await runner.wait(plain, 10)
    with pytest.raises(UnknownTaskError):
        await subscribe_run(runner, plain)
