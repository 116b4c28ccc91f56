"""The event plane of the Redis engine, in one process: hubs of two or three nodes on one Redis.
A stream run on one node reaches subscribers on the others in order and without gaps, late or
early, resumed by seq or by epoch; a stream can be ended from any node; finished ones expire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from taskcast.cluster import keys
from taskcast.cluster.cluster_hub import ClusterHub
from taskcast.cluster.node import Node
from taskcast.hub.hub import Item, Start, StreamEnd, StreamEvent, Subscription
from taskcast.settings import Settings
from tests.support.eventually import eventually, eventually_awaited
from tests.support.redis_server import RedisServer

#: seconds any one read of a subscription may take
READ_TIMEOUT = 10.0

HubMaker = Callable[..., Awaitable[ClusterHub]]


@pytest.fixture
async def make_hub(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[HubMaker]:
    started: list[tuple[Node, ClusterHub]] = []

    async def make(**overrides: Any) -> ClusterHub:
        settings = Settings.build(database=str(tmp_path / "unused.sqlite3"), **overrides)
        node = Node(redis_server.url)
        await node.start()
        hub = ClusterHub(settings, node)
        await hub.start()
        started.append((node, hub))
        return hub

    yield make
    for node, hub in reversed(started):
        hub.shutdown()
        await hub.stop()
        await node.close()


async def read_until_end(subscription: Subscription) -> list[Item]:
    """Every item up to and including the end."""
    items: list[Item] = []
    async with asyncio.timeout(READ_TIMEOUT):
        while not items or not isinstance(items[-1], StreamEnd):
            batch = await subscription.next_batch()
            assert batch, f"the subscription ended without a stream end: {items}"
            items += batch
    return items


def seqs(items: list[Item]) -> list[int]:
    return [item.seq for item in items if isinstance(item, StreamEvent)]


def texts(items: list[Item]) -> list[object]:
    return [item.data for item in items if isinstance(item, StreamEvent)]


def event(n: int) -> str:
    return json.dumps(f"line {n}")


async def test_a_stream_run_on_one_node_reaches_subscribers_on_the_others_early_and_late(
    make_hub: HubMaker,
) -> None:
    a, b, c = [await make_hub() for _ in range(3)]
    early = b.subscribe("s1")  # before the run exists anywhere: waits for its start
    a.open("s1", "run-1")
    for n in range(1, 51):
        a.publish("s1", event(n))
    during = c.subscribe("s1")
    a.publish_many("s1", [event(n) for n in range(51, 301)])
    await eventually(lambda: b.get("s1") is not None and b.get("s1").last_seq == 300)  # type: ignore[union-attr]
    a.close("s1", "success")
    for items in (await read_until_end(early), await read_until_end(during)):
        assert isinstance(items[0], Start) and items[0].run_id == "run-1"
        assert items[0].epoch == a.get("s1").epoch  # type: ignore[union-attr]
        assert seqs(items) == list(range(1, 301))
        assert texts(items) == [f"line {n}" for n in range(1, 301)]
        assert isinstance(items[-1], StreamEnd) and items[-1].state == "success"
    late = await read_until_end(c.subscribe("s1"))  # after the end, on a node that mirrored it
    assert seqs(late) == list(range(1, 301))
    resumed = await read_until_end(b.subscribe("s1", after=280))
    assert seqs(resumed) == list(range(281, 301))


async def test_a_late_subscriber_on_a_node_that_never_saw_the_stream_gets_its_history(
    make_hub: HubMaker,
) -> None:
    a, b = [await make_hub() for _ in range(2)]
    a.open("s2", "run-2")
    a.publish_many("s2", [event(n) for n in range(1, 11)])
    a.close("s2", "failure", "boom")
    await eventually_awaited(lambda: _ended(a.node.redis, "s2", "failure"), what="the end in Redis")
    items = await read_until_end(b.subscribe("s2", after=4))
    assert seqs(items) == list(range(5, 11))
    end = items[-1]
    assert isinstance(end, StreamEnd) and (end.state, end.error) == ("failure", "boom")


async def test_a_new_run_of_the_stream_on_another_node_replaces_the_old_one_everywhere(
    make_hub: HubMaker,
) -> None:
    a, b = [await make_hub() for _ in range(2)]
    a.open("s3", "first")
    a.publish("s3", event(1))
    a.close("s3", "success")
    assert seqs(await read_until_end(b.subscribe("s3"))) == [1]
    b.open("s3", "second")  # the next run happens on b
    b.publish_many("s3", [event(n) for n in (1, 2, 3)])
    b.close("s3", "success")
    items = await read_until_end(a.subscribe("s3"))
    assert isinstance(items[0], Start) and items[0].run_id == "second"
    assert texts(items) == ["line 1", "line 2", "line 3"]


async def test_bursts_of_one_event_reach_the_other_nodes_once_each(
    make_hub: HubMaker,
) -> None:
    """A worker's events a millisecond apart come one by one, each a burst of one."""
    a, b = [await make_hub() for _ in range(2)]
    a.open("s10", "run-10")
    a.publish_many("s10", [event(1)])
    a.publish("s10", event(2))
    a.publish_many("s10", [event(3)])
    a.close("s10", "success")
    items = await read_until_end(b.subscribe("s10"))
    assert seqs(items) == [1, 2, 3]
    assert texts(items) == ["line 1", "line 2", "line 3"]


async def test_a_resume_with_another_epoch_replays_from_the_start(
    make_hub: HubMaker,
) -> None:
    a, b = [await make_hub() for _ in range(2)]
    a.open("s4", "run-4")
    a.publish_many("s4", [event(n) for n in range(1, 6)])
    a.close("s4", "success")
    epoch = a.get("s4").epoch  # type: ignore[union-attr]
    same = await read_until_end(b.subscribe("s4", after=3, epoch=epoch))
    assert seqs(same) == [4, 5]
    stale = await read_until_end(b.subscribe("s4", after=3, epoch="an-old-epoch"))
    assert isinstance(stale[0], Start) and stale[0].epoch == epoch
    assert seqs(stale) == [1, 2, 3, 4, 5]
    local_stale = await read_until_end(a.subscribe("s4", after=3, epoch="an-old-epoch"))
    assert seqs(local_stale) == [1, 2, 3, 4, 5]


async def test_a_stream_with_no_run_anywhere_is_waited_for(
    make_hub: HubMaker,
) -> None:
    a, b = [await make_hub() for _ in range(2)]
    waiting = b.subscribe("s5")
    await eventually(lambda: b.mirror.following("s5") is not None)
    await eventually(lambda: not b.mirror.following("s5").syncing)  # type: ignore[union-attr]
    assert waiting.pending == 0  # nothing at all until it starts (contract B16)
    a.open("s5", "run-5")
    a.publish("s5", event(1))
    a.close("s5", "success")
    assert seqs(await read_until_end(waiting)) == [1]


async def test_a_stream_run_elsewhere_can_be_ended_from_any_node(
    make_hub: HubMaker,
) -> None:
    a, b, c = [await make_hub() for _ in range(3)]
    a.open("s6", "run-6")
    a.publish_many("s6", [event(n) for n in (1, 2)])
    on_c = c.subscribe("s6")
    await eventually(lambda: c.get("s6") is not None and c.get("s6").last_seq == 2)  # type: ignore[union-attr]
    assert b.close("s6", "interrupted", "node gone") is None  # b never saw it
    items = await read_until_end(on_c)
    assert seqs(items) == [1, 2]
    assert isinstance(items[-1], StreamEnd) and items[-1].state == "interrupted"
    meta = await b.node.redis.hgetall(keys.stream_meta("s6"))
    assert meta[b"state"] == b"interrupted" and meta[b"error"] == b"node gone"


async def test_a_finished_stream_expires_from_redis_and_a_new_node_then_waits(
    make_hub: HubMaker,
) -> None:
    a = await make_hub(stream_expiry=1)
    b = await make_hub()
    a.open("s7", "run-7")
    a.publish("s7", event(1))
    a.close("s7", "success")
    redis = a.node.redis
    await eventually_awaited(lambda: _ended(redis, "s7", "success"), what="the end in Redis")
    assert 0 < await redis.ttl(keys.stream_events("s7")) <= 1
    await eventually_awaited(
        lambda: _gone(redis, "s7"), timeout=5, what="the stream's keys to expire"
    )
    waiting = b.subscribe("s7")
    await eventually(lambda: not b.mirror.following("s7").syncing)  # type: ignore[union-attr]
    assert waiting.pending == 0


async def _ended(redis: Redis, stream_id: str, state: str) -> bool:
    """The stream's end is in Redis (its meta holds a state from the run's start on)."""
    return bool(await redis.hget(keys.stream_meta(stream_id), "state") == state.encode())


async def _gone(redis: Redis, stream_id: str) -> bool:
    found = await redis.exists(keys.stream_meta(stream_id), keys.stream_events(stream_id))
    return bool(found == 0)


async def test_history_in_redis_is_bounded_by_the_history_setting(
    make_hub: HubMaker,
) -> None:
    a = await make_hub(history_max_events=200, history_keep_head=10)
    b = await make_hub(history_max_events=200, history_keep_head=10)
    a.open("s8", "run-8")
    for start in range(1, 2001, 100):
        a.publish_many("s8", [event(n) for n in range(start, start + 100)])
        await asyncio.sleep(0)  # a turn of the loop: the writer flushes between bursts
    a.close("s8", "success")
    # The end, not just a state: a relay that fell behind the bursts writes the stream again
    # whole, and the events are read only once all of that is in.
    await eventually_awaited(lambda: _ended(a.node.redis, "s8", "success"), what="the end in Redis")
    kept = await a.node.redis.xlen(keys.stream_events("s8"))
    assert 200 <= kept < 400  # MAXLEN ~: about the bound, never the whole run
    items = await read_until_end(b.subscribe("s8"))
    assert seqs(items)[-1] == 2000 and seqs(items) == sorted(set(seqs(items)))


async def test_an_outbox_past_its_bound_is_written_again_whole_under_a_new_epoch(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = Settings.build(
        database=str(tmp_path / "unused.sqlite3"), history_max_events=50, history_keep_head=5
    )
    node = Node(redis_server.url)
    await node.start()
    hub = ClusterHub(settings, node)  # its writer not started: nothing leaves, as with Redis away
    try:
        hub.open("s9", "run-9")
        opened_epoch = hub.get("s9").epoch  # type: ignore[union-attr]
        hub.publish_many("s9", [event(n) for n in range(1, 121)])
        await hub.start()

        async def written() -> bool:
            return bool(await node.redis.hget(keys.stream_meta("s9"), "last") == b"120")

        await eventually_awaited(written, what="the stream in Redis")
        meta = await node.redis.hgetall(keys.stream_meta("s9"))
        assert meta[b"last"] == b"120" and meta[b"epoch"] != opened_epoch.encode()  # type: ignore[union-attr]
        assert meta[b"epoch"].decode() == hub.get("s9").epoch  # type: ignore[union-attr]
        stored: Any = await node.redis.xrange(keys.stream_events("s9"))
        seqs_in_redis = [int(entry_id.split(b"-")[0]) for entry_id, _ in stored]
        # The local history (head 1..5 and the last 45) is what is written again.
        assert seqs_in_redis == [*range(1, 6), *range(76, 121)]
    finally:
        hub.shutdown()
        await hub.stop()
        await node.close()
