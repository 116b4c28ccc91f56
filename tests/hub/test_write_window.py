"""Tests of the hub's write window: a lone event leaves at once, a burst leaves in one write per
subscriber, and nothing is reordered, lost or left unbounded on the way."""

from __future__ import annotations

import asyncio
import random
import time
from asyncio import Task
from collections.abc import Sequence
from typing import Any

import pytest

from taskcast.hub.fanout import LONE_HOLD_PAUSE
from taskcast.hub.hub import (
    Hub,
    Start,
    StreamEnd,
    StreamEvent,
    SubscriberTooSlow,
    Subscription,
)
from taskcast.hub.subscription import MAX_HELD
from tests.support.eventually import eventually


class Connection:
    """A subscriber's socket as the hub sees it (its sink): it takes direct writes, or refuses
    them when told to, and notes where a cut-off said to resume."""

    def __init__(self) -> None:
        self.writes: list[list[StreamEvent]] = []
        self.accepting = True
        self.delay = 0.0
        self.cut_offs: list[int] = []

    def write(self, events: Sequence[StreamEvent]) -> bool:
        time.sleep(self.delay)
        if self.accepting:
            self.writes.append(list(events))
        return self.accepting

    def cut_off(self, resume_after: int) -> None:
        self.cut_offs.append(resume_after)

    def seqs(self) -> list[int]:
        """The seq of every event written, in order."""
        return [event.seq for events in self.writes for event in events]


def open_hub(**options: Any) -> Hub:
    """A hub with stream "s" open."""
    hub = Hub(**options)
    hub.open("s", "run")
    return hub


def publish(hub: Hub, first: int, last: int) -> None:
    for n in range(first, last + 1):
        hub.publish("s", str(n))


async def parked(hub: Hub, stream_id: str = "s") -> tuple[Subscription, Connection, Task[Any]]:
    """A subscriber that has read its start marker and waits in next_batch."""
    connection = Connection()
    subscription = hub.subscribe(stream_id, sink=connection)
    first = await asyncio.wait_for(subscription.next_batch(), 1)
    assert isinstance(first[0], Start)
    waiting = asyncio.ensure_future(subscription.next_batch())
    await asyncio.sleep(0)
    return subscription, connection, waiting


def event_seqs(items: list[Any]) -> list[int]:
    return [item.seq for item in items if isinstance(item, StreamEvent)]


async def test_a_lone_event_leaves_at_once_and_a_burst_in_one_write() -> None:
    hub = open_hub(write_window=0.05)
    subscription, connection, waiting = await parked(hub)
    one = hub.publish("s", '"a"')
    assert connection.writes == [[one]]  # at once
    two, three = hub.publish("s", '"b"'), hub.publish("s", '"c"')
    assert connection.writes == [[one]]  # held: they followed within the window
    assert subscription.pending == 2
    await asyncio.sleep(0.1)
    assert connection.writes == [[one], [two, three]]
    assert subscription.delivered_seq == 3 and subscription.pending == 0
    await asyncio.sleep(0.06)  # a quiet window: the next event leaves at once again
    four = hub.publish("s", '"d"')
    assert connection.writes[-1] == [four]
    assert not waiting.done()  # the consumer was never woken
    hub.shutdown()
    assert await asyncio.wait_for(waiting, 1) == []


async def test_a_burst_that_is_over_is_written_within_two_turns_of_the_loop() -> None:
    hub = open_hub(write_window=10)
    _, connection, _ = await parked(hub)
    publish(hub, 1, 3)
    assert connection.seqs() == [1]
    await asyncio.sleep(0)  # one turn: the burst might go on
    assert connection.seqs() == [1]
    await asyncio.sleep(0)  # two turns with nothing published: it is over
    assert connection.seqs() == [1, 2, 3] and len(connection.writes) == 2
    hub.shutdown()


async def test_a_task_sending_an_event_every_turn_is_written_once_per_window() -> None:
    hub = open_hub(write_window=0.2)
    _, connection, _ = await parked(hub)
    began = time.monotonic()
    for n in range(1, 51):
        hub.publish("s", str(n))
        await asyncio.sleep(0)
    await eventually(lambda: connection.seqs() == list(range(1, 51)), 5, "every event written")
    elapsed = time.monotonic() - began
    # The first alone, then one write per window that passed, however slow the machine was:
    # a busy loop gives more windows, never more writes than windows.
    assert connection.writes[0] == [connection.writes[0][0]] and connection.seqs()[0] == 1
    assert len(connection.writes) <= 2 + int(elapsed / 0.2), (len(connection.writes), elapsed)
    hub.shutdown()


async def test_held_events_are_written_before_the_end() -> None:
    hub = open_hub(write_window=10)
    _, connection, waiting = await parked(hub)
    publish(hub, 1, 4)
    assert connection.seqs() == [1]
    hub.close("s", "success")
    assert connection.seqs() == [1, 2, 3, 4]
    batch = await asyncio.wait_for(waiting, 1)
    assert len(batch) == 1 and isinstance(batch[0], StreamEnd)


async def test_held_events_queue_in_order_when_the_connection_cannot_take_them() -> None:
    hub = open_hub(write_window=10)
    subscription, connection, waiting = await parked(hub)
    publish(hub, 1, 3)
    connection.accepting = False  # its write buffer is full
    hub.write_held()
    assert event_seqs(await asyncio.wait_for(waiting, 1)) == [2, 3]
    connection.accepting = True
    hub.publish("s", "4")
    assert event_seqs(await asyncio.wait_for(subscription.next_batch(), 1)) == [4]
    assert connection.seqs() == [1]
    hub.shutdown()


async def test_a_subscriber_holds_at_most_max_held_events() -> None:
    hub = open_hub(write_window=10)
    _, connection, _ = await parked(hub)
    publish(hub, 1, MAX_HELD + 1)
    assert connection.seqs() == list(range(1, MAX_HELD + 2))  # no window had to end
    assert len(connection.writes) == 2
    hub.shutdown()


async def test_a_full_hold_that_a_connection_refuses_queues_each_event_once() -> None:
    hub = open_hub(write_window=10)
    refusing, refusing_connection, waiting = await parked(hub)
    _, other, _ = await parked(hub)
    busy = hub.subscribe("s")  # not waiting: each publish looks at the subscribers one by one
    hub.publish("s", "1")
    refusing_connection.accepting = False
    publish(hub, 2, MAX_HELD + 1)  # the last one fills the hold: written at once
    assert other.seqs() == list(range(1, MAX_HELD + 2))
    assert not refusing.direct
    assert event_seqs(await asyncio.wait_for(waiting, 1)) == list(range(2, MAX_HELD + 2))
    assert event_seqs(await asyncio.wait_for(busy.next_batch(), 1)) == list(range(1, MAX_HELD + 2))
    hub.shutdown()


async def test_held_events_that_cannot_be_written_count_toward_the_cut_off() -> None:
    hub = open_hub(write_window=10, max_pending=3)
    _, connection, waiting = await parked(hub)
    publish(hub, 1, 5)
    connection.accepting = False
    hub.write_held()  # four held events, room for three
    assert connection.cut_offs == [1]
    assert hub.get("s").subscribers == set()  # type: ignore[union-attr]
    with pytest.raises(SubscriberTooSlow, match="resume after 1"):
        await asyncio.wait_for(waiting, 1)


async def test_a_wide_fan_out_writes_each_subscriber_once_per_window() -> None:
    hub = open_hub(write_window=0.05)
    readers = [await parked(hub) for _ in range(100)]
    publish(hub, 1, 10)
    await asyncio.sleep(0.1)
    for _, connection, waiting in readers:
        assert connection.seqs() == list(range(1, 11))
        assert len(connection.writes) == 2  # the first event at once, the other nine together
        assert not waiting.done()
    hub.shutdown()


async def test_writing_held_events_does_not_make_the_next_event_wait() -> None:
    """Events paced slower than the window leave at once, even right after a held write (the
    loop's timers are coarse: the write of held events and the next event often coincide)."""
    hub = open_hub(write_window=0.05)
    _, connection, _ = await parked(hub)
    publish(hub, 1, 2)
    assert connection.seqs() == [1]
    await asyncio.sleep(0.1)  # the window ends, the held event is written
    assert connection.seqs() == [1, 2]
    publish(hub, 3, 3)
    assert connection.seqs() == [1, 2, 3]
    hub.shutdown()


async def test_when_writing_takes_longer_than_a_window_the_next_events_are_held() -> None:
    hub = open_hub(write_window=0.005)
    readers = [await parked(hub) for _ in range(10)]
    for _, connection, _ in readers:
        connection.delay = 0.001  # a write to it takes 1 ms: 10 ms for all of them
    publish(hub, 1, 1)  # written at once, and it took 10 ms
    publish(hub, 2, 5)
    hub.write_held()  # one write each for 2..5, taking 10 ms again
    publish(hub, 6, 6)  # so this one is held as well
    assert all(connection.seqs() == [1, 2, 3, 4, 5] for _, connection, _ in readers)
    await asyncio.sleep(0.05)
    for _, connection, _ in readers:
        assert connection.seqs() == [1, 2, 3, 4, 5, 6] and len(connection.writes) == 3
    hub.shutdown()


async def test_events_that_come_one_by_one_are_not_held_after_a_hold_that_saved_nothing() -> None:
    """A wide fan-out whose writing takes most of the gap between events: each event follows the
    previous one's writing within the window, yet comes alone, so holding it only costs a second
    pass. Once a pass writes a single held publish, the stream's events leave at once for a
    while; a burst after that is held again."""
    hub = open_hub(write_window=0.005)
    readers = [await parked(hub) for _ in range(3)]
    for _, connection, _ in readers:
        connection.delay = 0.002  # 6 ms to write to all three: longer than the window
    publish(hub, 1, 1)  # alone: written at once
    publish(hub, 2, 2)  # within the window of that write's end: held
    assert all(connection.seqs() == [1] for _, connection, _ in readers)
    await eventually(
        lambda: all(connection.seqs() == [1, 2] for _, connection, _ in readers), 1, "2 written"
    )
    publish(hub, 3, 3)  # again within a window of the last write, but written at once now
    assert all(connection.seqs() == [1, 2, 3] for _, connection, _ in readers)
    await asyncio.sleep(LONE_HOLD_PAUSE + 0.01)
    for _, connection, _ in readers:
        connection.delay = 0.0
    publish(hub, 4, 6)  # a burst once the pause is over: 4 at once, 5 and 6 held together
    assert all(connection.seqs() == [1, 2, 3, 4] for _, connection, _ in readers)
    await eventually(
        lambda: all(connection.seqs() == [1, 2, 3, 4, 5, 6] for _, connection, _ in readers),
        1,
        "5 and 6 written",
    )
    for _, connection, _ in readers:
        assert [event.seq for event in connection.writes[-1]] == [5, 6]  # in one write
    hub.shutdown()


async def test_subscribers_stay_in_their_direct_table_while_their_events_are_held() -> None:
    """Holding a burst for a stream's idle subscribers costs nothing per subscriber: they
    stay where a publish writes to them all in one pass, and get one write each at the end."""
    hub = open_hub(write_window=10)
    readers = [await parked(hub) for _ in range(20)]
    publish(hub, 1, 4)
    for subscription, connection, _ in readers:
        assert subscription.direct and connection.seqs() == [1]
        assert subscription.pending == 3 and subscription.delivered_seq == 1
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the burst is over
    for subscription, connection, waiting in readers:
        assert connection.seqs() == [1, 2, 3, 4] and len(connection.writes) == 2
        assert subscription.direct and subscription.delivered_seq == 4
        assert not waiting.done()
    hub.shutdown()


async def test_a_subscriber_whose_consumer_wakes_while_events_are_held_gets_them_queued() -> None:
    hub = open_hub(write_window=10)
    subscription, connection, waiting = await parked(hub)
    _, other, _ = await parked(hub)
    publish(hub, 1, 3)  # 2 and 3 held for both
    waiting.cancel()  # this consumer stops waiting (a timeout of its own, say)
    await asyncio.gather(waiting, return_exceptions=True)
    assert not subscription.direct
    assert event_seqs(await asyncio.wait_for(subscription.next_batch(), 1)) == [2, 3]
    hub.publish("s", "4")  # its consumer is not waiting: queued for it
    hub.write_held()
    assert event_seqs(await asyncio.wait_for(subscription.next_batch(), 1)) == [4]
    assert connection.seqs() == [1] and other.seqs() == [1, 2, 3, 4]
    hub.shutdown()


async def test_a_subscriber_idle_again_during_a_hold_is_not_written_the_held_events_twice() -> None:
    hub = open_hub(write_window=10)
    busy_connection = Connection()
    busy = hub.subscribe("s", sink=busy_connection)  # its consumer is not waiting yet
    _, idle, _ = await parked(hub)
    publish(hub, 1, 3)  # 1 written to the idle one, 2 and 3 held for it; all queued for busy
    assert event_seqs(await busy.next_batch()) == [1, 2, 3]  # queued: no turn of the loop
    waiting = asyncio.ensure_future(busy.next_batch())  # idle now, with everything so far
    await asyncio.sleep(0)  # one turn: the burst might go on, so 2 and 3 are still held
    hub.publish("s", "4")
    hub.write_held()
    assert idle.seqs() == [1, 2, 3, 4] and idle.writes[-1][0].seq == 2
    assert busy_connection.seqs() == [4] and not waiting.done()
    hub.shutdown()


class Reader:
    """A page: its connection and its consumer, with everything it got in the order it got it."""

    def __init__(
        self, subscription: Subscription, connection: Connection, waiting: Task[Any]
    ) -> None:
        self.subscription = subscription
        self.connection = connection
        self.waiting = waiting
        self.taken = 0  # how many of the connection's writes are in `got` already
        self.got: list[int] = []

    def collect(self) -> None:
        """Take what was written directly, then a batch the consumer has been handed, if any."""
        written = self.connection.seqs()
        self.got += written[self.taken :]
        self.taken = len(written)
        if self.waiting.done():
            if not self.waiting.cancelled():
                self.got += event_seqs(self.waiting.result())
            self.waiting = asyncio.ensure_future(self.subscription.next_batch())

    def stop_waiting(self) -> None:
        """The consumer gives up waiting (a timeout of its own); it waits again later."""
        self.waiting.cancel()


@pytest.mark.parametrize("seed", range(40))
async def test_any_mix_of_writes_refusals_and_reads_keeps_each_subscriber_in_order(
    seed: int,
) -> None:
    """Each subscriber gets every event once, in order, split any way between direct writes
    and its queue, whatever the window, the refusals and the timing of its consumer (which
    may also stop waiting and wait again)."""
    chance = random.Random(seed)
    hub = Hub(write_window=chance.choice([0, 0.001, 10]), max_pending=10_000)
    hub.open("s", "run")
    readers = [Reader(*await parked(hub)) for _ in range(3)]
    published = 0
    for _ in range(200):
        step = chance.random()
        if step < 0.6:
            published += 1
            hub.publish("s", str(published))
        elif step < 0.7:
            hub.write_held()
        elif step < 0.85:
            reader = chance.choice(readers)
            reader.connection.accepting = not reader.connection.accepting
        elif step < 0.9:
            chance.choice(readers).stop_waiting()
        else:
            await asyncio.sleep(0)  # queued batches reach their consumers
        for reader in readers:
            reader.collect()  # a consumer writes its batch before it waits again
    hub.close("s", "success")
    await asyncio.sleep(0)  # a consumer that stopped waiting has stopped
    for reader in readers:
        reader.collect()
        while True:
            batch = await asyncio.wait_for(reader.waiting, 1)
            reader.got += event_seqs(batch)
            if not batch or isinstance(batch[-1], StreamEnd):
                break
            reader.waiting = asyncio.ensure_future(reader.subscription.next_batch())
        assert reader.got == list(range(1, published + 1))


async def test_a_burst_published_together_is_one_write_and_numbered_in_order() -> None:
    hub = open_hub(write_window=0.05)
    _, connection, waiting = await parked(hub)
    assert hub.publish_many("s", ['"a"', '"b"', '"c"']) == 1
    assert connection.seqs() == [1, 2, 3] and len(connection.writes) == 1
    assert hub.publish_many("s", ['"d"', '"e"']) == 4  # within the window: held
    assert connection.seqs() == [1, 2, 3]
    await asyncio.sleep(0.1)
    assert connection.seqs() == [1, 2, 3, 4, 5] and len(connection.writes) == 2
    stream = hub.get("s")
    assert stream is not None and stream.last_seq == 5
    assert [event.data_json for event in stream.history()] == ['"a"', '"b"', '"c"', '"d"', '"e"']
    assert not waiting.done()
    hub.shutdown()


async def test_a_burst_skips_what_a_resumed_subscriber_has_and_queues_for_a_busy_one() -> None:
    hub = open_hub(write_window=0)
    hub.publish_many("s", ['"1"', '"2"'])
    resumed = hub.subscribe("s", after=3)  # it had 1..3 from an earlier connection
    busy = hub.subscribe("s")  # its consumer is writing: not parked
    hub.publish_many("s", ['"3"', '"4"', '"5"'])
    assert event_seqs(await asyncio.wait_for(resumed.next_batch(), 1)) == [4, 5]
    assert event_seqs(await asyncio.wait_for(busy.next_batch(), 1)) == [1, 2, 3, 4, 5]


async def test_a_burst_larger_than_a_queue_cuts_its_subscriber_off() -> None:
    hub = open_hub(write_window=0, max_pending=3)
    connection = Connection()
    subscription = hub.subscribe("s", sink=connection)
    hub.publish_many("s", [str(n) for n in range(5)])
    assert connection.cut_offs == [0]
    with pytest.raises(SubscriberTooSlow):
        await asyncio.wait_for(subscription.next_batch(), 1)
