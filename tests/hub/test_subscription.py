"""Tests of taskcast.hub.subscription: slow subscribers are cut off with their resume point,
and a parked subscriber's sink is written to directly."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

import pytest

from taskcast.hub.hub import Hub, Item, Start, StreamEvent, SubscriberTooSlow, Subscription
from taskcast.hub.subscription import MAX_HELD_BYTES
from tests.hub.support import batch, data, drain, kinds, publish_many, seqs

# -- slow subscribers ------------------------------------------------------------------------------


async def test_slow_subscriber_is_cut_off_with_its_resume_point() -> None:
    hub = Hub(max_pending=3)
    stream = hub.open("s", "run1")
    slow = hub.subscribe("s")
    fast = hub.subscribe("s")
    fast_items = await batch(fast)
    assert kinds(await batch(slow)) == ["start:run1"]
    hub.publish("s", data(1))
    hub.publish("s", data(2))
    assert seqs(await batch(slow)) == [1, 2]
    for n in range(3, 6):
        hub.publish("s", data(n))
        fast_items.extend(await batch(fast))
    # Exactly max_pending live items queued: still a subscriber.
    assert slow.pending == 3
    assert slow in stream.subscribers
    hub.publish("s", data(6))
    fast_items.extend(await batch(fast))
    assert slow not in stream.subscribers
    with pytest.raises(SubscriberTooSlow) as caught:
        await batch(slow)
    assert caught.value.stream_id == "s"
    assert caught.value.resume_after == 2
    # The slow one resumes where it was cut off, and misses nothing.
    resumed = hub.subscribe("s", after=caught.value.resume_after)
    assert kinds(await batch(resumed)) == ["start:run1", "3", "4", "5", "6"]
    hub.publish("s", data(7))
    hub.close("s", "success")
    fast_items.extend(await drain(fast))
    assert kinds(await drain(resumed)) == ["7", "end:success"]
    assert kinds(fast_items) == ["start:run1", *map(str, range(1, 8)), "end:success"]


async def test_slow_subscriber_that_never_read_resumes_after_its_start_point() -> None:
    hub = Hub(max_pending=2)
    hub.open("s", "run1")
    publish_many(hub, "s", 1, 4)
    subscription = hub.subscribe("s", after=4)
    assert kinds(await batch(subscription)) == ["start:run1"]
    publish_many(hub, "s", 5, 7)
    with pytest.raises(SubscriberTooSlow) as caught:
        await batch(subscription)
    assert caught.value.resume_after == 4


async def test_replay_of_a_long_history_does_not_count_against_max_pending() -> None:
    hub = Hub(max_pending=3, max_events=1_000)
    stream = hub.open("s", "run1")
    publish_many(hub, "s", 1, 50)
    subscription = hub.subscribe("s")
    assert subscription.pending == 51
    # One live event arrives before the subscriber has read its replay: it is not too slow.
    hub.publish("s", data(51))
    assert subscription in stream.subscribers
    items = await batch(subscription)
    assert kinds(items) == ["start:run1", *map(str, range(1, 52))]


async def test_cut_off_subscriber_does_not_disturb_a_waiting_one() -> None:
    hub = Hub(max_pending=1)
    hub.open("s", "run1")
    slow = hub.subscribe("s")
    quick = hub.subscribe("s")
    await batch(slow)
    await batch(quick)
    received: list[Item] = []
    for n in range(1, 6):
        waiting = asyncio.ensure_future(quick.next_batch())
        await asyncio.sleep(0)
        hub.publish("s", data(n))
        received.extend(await asyncio.wait_for(waiting, 1))
    assert seqs(received) == [1, 2, 3, 4, 5]
    with pytest.raises(SubscriberTooSlow):
        await batch(slow)


async def test_direct_path_hands_events_to_a_parked_subscriber_in_order() -> None:
    hub = Hub(write_window=0)  # every event is written at once
    hub.open("s", "run1")
    written: list[list[StreamEvent]] = []
    accept = True

    class Direct:
        def write(self, events: Sequence[StreamEvent]) -> bool:
            if accept:
                written.append(list(events))
            return accept

        def cut_off(self, resume_after: int) -> None:
            raise AssertionError("not cut off")

    subscription = hub.subscribe("s", sink=Direct())
    first = await asyncio.wait_for(subscription.next_batch(), 1)  # the start marker
    assert isinstance(first[0], Start)
    waiting = asyncio.ensure_future(subscription.next_batch())
    await asyncio.sleep(0)  # parked in next_batch, nothing queued
    one = hub.publish("s", '"a"')
    two = hub.publish("s", '"b"')
    assert written == [[one], [two]] and subscription.delivered_seq == 2
    assert not waiting.done()  # written without waking the consumer
    accept = False  # the connection's buffer is full: the next event is queued
    three = hub.publish("s", '"c"')
    accept = True
    four = hub.publish("s", '"d"')  # something is queued now, so this one queues behind it
    assert written == [[one], [two]]
    assert seqs(await asyncio.wait_for(waiting, 1)) == [three.seq, four.seq]


async def test_ready_names_the_sink_only_while_the_consumer_waits_with_nothing_queued() -> None:
    hub = Hub(write_window=0)
    hub.open("s", "run1")
    accept = True

    class Direct:
        def write(self, events: Sequence[StreamEvent]) -> bool:
            return accept

        def cut_off(self, resume_after: int) -> None:
            raise AssertionError("not cut off")

    sink = Direct()
    subscription = hub.subscribe("s", sink=sink)
    assert subscription.ready is None  # the start marker is queued
    await asyncio.wait_for(subscription.next_batch(), 1)
    assert subscription.ready is None  # the consumer is busy with its batch
    waiting = asyncio.ensure_future(subscription.next_batch())
    await asyncio.sleep(0)
    assert subscription.ready is sink  # parked, nothing queued: the hub writes through it
    hub.publish("s", '"a"')
    assert subscription.ready is sink and not waiting.done()
    accept = False
    hub.publish("s", '"b"')  # refused: queued, and the consumer is woken for it
    assert subscription.ready is None
    assert seqs(await asyncio.wait_for(waiting, 1)) == [2]
    hub.unsubscribe(subscription)
    assert await asyncio.wait_for(subscription.next_batch(), 1) == []
    assert subscription.ready is None


class Grouped:
    """A kind of sink that writes a stream's whole direct table in one pass, as the channel's
    sockets do; it notes each pass and refuses the subscribers in `refusing`."""

    passes: ClassVar[list[tuple[list[Subscription], list[int]]]] = []
    refusing: ClassVar[set[Subscription]] = set()

    @staticmethod
    def write_each(
        table: dict[Subscription, Grouped], events: Sequence[StreamEvent]
    ) -> list[Subscription]:
        Grouped.passes.append((list(table), seqs(list(events))))
        return [sub for sub in table if sub in Grouped.refusing]

    def write(self, events: Sequence[StreamEvent]) -> bool:
        raise AssertionError("written one by one")

    def cut_off(self, resume_after: int) -> None:
        raise AssertionError("not cut off")


async def park(subscription: Subscription) -> asyncio.Future[list[Item]]:
    waiting = asyncio.ensure_future(subscription.next_batch())
    await asyncio.sleep(0)
    return waiting


async def test_idle_subscribers_are_written_in_one_pass_per_kind_of_sink() -> None:
    Grouped.passes, Grouped.refusing = [], set()
    hub = Hub(write_window=0)
    hub.open("s", "run1")
    subs = [hub.subscribe("s", sink=Grouped()) for _ in range(3)]
    waits = []
    for sub in subs:
        await asyncio.wait_for(sub.next_batch(), 1)  # the start marker
        waits.append(await park(sub))
    hub.publish("s", '"a"')
    assert Grouped.passes == [(subs, [1])]
    assert [sub.delivered_seq for sub in subs] == [1, 1, 1]
    Grouped.refusing = {subs[1]}  # its socket cannot take more now: it leaves the table
    hub.publish("s", '"b"')
    Grouped.refusing = set()
    hub.publish("s", '"c"')  # queued behind "b" for it, written to the others
    assert Grouped.passes[1:] == [(subs, [2]), ([subs[0], subs[2]], [3])]
    assert [sub.delivered_seq for sub in subs] == [3, 1, 3]
    assert not waits[0].done() and not waits[2].done()
    assert seqs(await asyncio.wait_for(waits[1], 1)) == [2, 3]
    waits[1] = await park(subs[1])  # idle again with every event: back in the table
    hub.publish("s", '"d"')
    assert Grouped.passes[3] == ([subs[0], subs[2], subs[1]], [4])
    hub.close("s", "success")
    for sub, waiting in zip(subs, waits, strict=True):
        assert kinds(await asyncio.wait_for(waiting, 1)) == ["end:success"]
        assert sub.delivered_seq == 4


async def test_kinds_of_sink_get_each_event_once_in_order_side_by_side() -> None:
    Grouped.passes, Grouped.refusing = [], set()
    hub = Hub(write_window=0)
    hub.open("s", "run1")
    written: list[int] = []

    class OneByOne:
        def write(self, events: Sequence[StreamEvent]) -> bool:
            written.extend(seqs(list(events)))
            return True

        def cut_off(self, resume_after: int) -> None:
            raise AssertionError("not cut off")

    grouped, plain = hub.subscribe("s", sink=Grouped()), hub.subscribe("s", sink=OneByOne())
    for sub in (grouped, plain):
        await asyncio.wait_for(sub.next_batch(), 1)
        await park(sub)
    publish_many(hub, "s", 1, 3)
    assert written == [1, 2, 3]
    assert Grouped.passes == [([grouped], [1]), ([grouped], [2]), ([grouped], [3])]


# -- the byte bound --------------------------------------------------------------------------------


async def test_held_events_are_written_at_once_past_max_held_bytes() -> None:
    hub = Hub(write_window=10)  # a long window: only the byte bound writes the held events
    hub.open("s", "run1")
    written: list[list[StreamEvent]] = []

    class Direct:
        def write(self, events: Sequence[StreamEvent]) -> bool:
            written.append(list(events))
            return True

        def cut_off(self, resume_after: int) -> None:
            raise AssertionError("not cut off")

    subscription = hub.subscribe("s", sink=Direct())
    await batch(subscription)  # the start marker
    waiting = asyncio.ensure_future(subscription.next_batch())
    await asyncio.sleep(0)
    big = '"' + "x" * (MAX_HELD_BYTES // 4) + '"'
    hub.publish("s", big)  # alone: written at once
    hub.publish("s", big)
    hub.publish("s", big)
    hub.publish("s", big)
    assert [seqs(write) for write in written] == [[1]]  # held: within the window
    hub.publish("s", big)  # the held events pass MAX_HELD_BYTES: all are written now
    assert [seqs(write) for write in written] == [[1], [2, 3, 4, 5]]
    assert subscription.held is None and subscription.pending_bytes == 0
    hub.shutdown()
    assert await asyncio.wait_for(waiting, 1) == []


async def test_a_subscriber_that_never_reads_is_cut_off_by_bytes_before_count() -> None:
    hub = Hub(max_pending=10_000, max_pending_bytes=1_000_000)
    hub.open("s", "run")
    stalled = hub.subscribe("s")
    held = []
    for _ in range(30):
        hub.publish("s", '"' + "x" * 200_000 + '"')
        held.append(stalled.pending_bytes)
    assert max(held) <= 1_000_000, f"it held {max(held)} bytes"
    assert held[-1] == 0  # cut off: what it held is let go at once
    with pytest.raises(SubscriberTooSlow) as slow:
        await batch(stalled)
    assert slow.value.resume_after == 0


async def test_one_event_larger_than_the_byte_bound_still_reaches_a_reader_that_keeps_up() -> None:
    hub = Hub(max_pending_bytes=1000)
    hub.open("s", "run")
    reader = hub.subscribe("s")
    await batch(reader)  # the start marker
    for n in range(3):
        hub.publish("s", '"' + "x" * 5000 + '"')
        assert seqs(await batch(reader)) == [n + 1]
