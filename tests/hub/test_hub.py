"""Tests of taskcast.hub.hub: streams, their bounded history, subscribers, replay and slow subscribers."""

from __future__ import annotations

import asyncio
import json

import pytest
from taskcast.hub.hub import (
    START_FRAME,
    Hub,
    Item,
    Start,
    StreamEnd,
    StreamEvent,
    SubscriberTooSlow,
    Subscription,
)


def data(n: int) -> str:
    """The JSON text of event n (a string, as ptig-task clients need)."""
    return json.dumps(f"<li>{n}</li>")


async def batch(subscription: Subscription) -> list[Item]:
    return await asyncio.wait_for(subscription.next_batch(), 1)


async def drain(subscription: Subscription) -> list[Item]:
    """Every item until the subscription ends (next_batch returns [])."""
    items: list[Item] = []
    while chunk := await batch(subscription):
        items.extend(chunk)
    return items


def seqs(items: list[Item]) -> list[int]:
    return [item.seq for item in items if isinstance(item, StreamEvent)]


def kinds(items: list[Item]) -> list[str]:
    """A readable outline: "start:<run>", "<seq>", "end:<state>"."""
    outline: list[str] = []
    for item in items:
        if isinstance(item, Start):
            outline.append(f"start:{item.run_id}")
        elif isinstance(item, StreamEvent):
            outline.append(str(item.seq))
        else:
            outline.append(f"end:{item.state}")
    return outline


def publish_many(hub: Hub, stream_id: str, first: int, last: int) -> None:
    for n in range(first, last + 1):
        hub.publish(stream_id, data(n))


# -- publishing ------------------------------------------------------------------------------------


def test_publish_numbers_events_from_one_in_order() -> None:
    hub = Hub()
    stream = hub.open("demo__1", "run1")
    events = [hub.publish("demo__1", data(n)) for n in range(1, 6)]
    assert [event.seq for event in events] == [1, 2, 3, 4, 5]
    assert [event.data for event in events] == [f"<li>{n}</li>" for n in range(1, 6)]
    assert stream.last_seq == 5
    assert stream.history() == events


def test_publish_to_a_stream_that_is_not_open_raises() -> None:
    hub = Hub()
    with pytest.raises(RuntimeError, match="not open"):
        hub.publish("nothing", data(1))
    hub.open("s", "run1")
    hub.close("s", "success")
    with pytest.raises(RuntimeError, match="not open"):
        hub.publish("s", data(1))


def test_streams_are_independent() -> None:
    hub = Hub()
    hub.open("a", "run-a")
    hub.open("b", "run-b")
    assert hub.publish("a", data(1)).seq == 1
    assert hub.publish("b", data(1)).seq == 1
    assert hub.publish("a", data(2)).seq == 2
    assert len(hub) == 2
    assert "a" in hub and "b" in hub and "c" not in hub
    assert {stream.id for stream in hub} == {"a", "b"}


# -- frames ----------------------------------------------------------------------------------------


def test_event_frame_is_the_exact_channel_json() -> None:
    hub = Hub()
    hub.open("s", "run1")
    first = hub.publish("s", json.dumps("<b>hi</b>"))
    second = hub.publish("s", json.dumps({"k": [1, 2]}))
    assert first.frame == '{"status":"event","data":"<b>hi</b>","seq":1}'
    assert json.loads(second.frame) == {"status": "event", "data": {"k": [1, 2]}, "seq": 2}


async def test_event_is_encoded_once_and_shared_by_every_subscriber() -> None:
    hub = Hub()
    hub.open("s", "run1")
    one = hub.subscribe("s")
    two = hub.subscribe("s")
    hub.publish("s", data(1))
    [_, event_one] = await batch(one)
    [_, event_two] = await batch(two)
    assert event_one is event_two
    assert isinstance(event_one, StreamEvent) and isinstance(event_two, StreamEvent)
    assert event_one.frame is event_two.frame


def test_start_frame_is_status_start() -> None:
    assert Start("run1").frame == START_FRAME == '{"status":"start"}'


def test_end_frame_carries_the_state_and_only_for_errors_the_error() -> None:
    hub = Hub()
    hub.open("ok", "run1")
    hub.open("bad", "run2")
    ok = hub.close("ok", "success")
    bad = hub.close("bad", "failed", "ValueError: boom")
    assert ok is not None and bad is not None
    assert json.loads(ok.frame) == {"status": "stop", "state": "success"}
    assert json.loads(bad.frame) == {
        "status": "stop",
        "state": "failed",
        "error": "ValueError: boom",
    }


# -- subscribing -----------------------------------------------------------------------------------


async def test_subscriber_before_open_gets_nothing_until_the_run_opens() -> None:
    hub = Hub()
    subscription = hub.subscribe("later__1")
    assert hub.subscriber_count == 1
    waiting = asyncio.ensure_future(subscription.next_batch())
    await asyncio.sleep(0)
    hub.open("other", "run-other")
    hub.publish("other", data(1))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert subscription.pending == 0

    hub.open("later__1", "run1")
    hub.publish("later__1", data(1))
    first = await asyncio.wait_for(waiting, 1)
    assert kinds(first) == ["start:run1", "1"]
    hub.publish("later__1", data(2))
    hub.close("later__1", "success")
    assert kinds(await drain(subscription)) == ["2", "end:success"]


async def test_late_subscriber_gets_start_history_then_live_without_gap_or_duplicate() -> None:
    hub = Hub()
    hub.open("s", "run1")
    subscriptions: list[Subscription] = []
    received: list[list[Item]] = []
    for n in range(1, 31):
        hub.publish("s", data(n))
        if n % 4 == 0:
            subscriptions.append(hub.subscribe("s"))
            received.append([])
        if n % 3 == 0:
            # Read some subscribers part of the way, so replay and live are mixed in batches.
            for index, subscription in enumerate(subscriptions):
                if index % 2 == n % 2 and subscription.pending:
                    received[index].extend(await batch(subscription))
    hub.close("s", "success")
    assert len(subscriptions) == 7
    for subscription, items in zip(subscriptions, received, strict=True):
        items.extend(await drain(subscription))
        assert kinds(items) == ["start:run1", *map(str, range(1, 31)), "end:success"]


async def test_subscribe_after_n_replays_only_later_events() -> None:
    hub = Hub()
    hub.open("s", "run1")
    publish_many(hub, "s", 1, 5)
    subscription = hub.subscribe("s", after=3)
    assert kinds(await batch(subscription)) == ["start:run1", "4", "5"]
    hub.publish("s", data(6))
    assert kinds(await batch(subscription)) == ["6"]
    hub.close("s", "success")
    assert kinds(await drain(subscription)) == ["end:success"]


async def test_subscribe_after_n_on_a_finished_stream() -> None:
    hub = Hub()
    hub.open("s", "run1")
    publish_many(hub, "s", 1, 5)
    hub.close("s", "success")
    subscription = hub.subscribe("s", after=4)
    assert kinds(await drain(subscription)) == ["start:run1", "5", "end:success"]


async def test_close_sends_the_end_and_releases_subscribers() -> None:
    hub = Hub()
    hub.open("s", "run1")
    subscription = hub.subscribe("s")
    assert kinds(await batch(subscription)) == ["start:run1"]
    waiting = asyncio.ensure_future(subscription.next_batch())
    await asyncio.sleep(0)
    end = hub.close("s", "failed", "RuntimeError: broken")
    items = await asyncio.wait_for(waiting, 1)
    assert items == [end]
    assert isinstance(end, StreamEnd)
    assert (end.state, end.error, end.last_seq) == ("failed", "RuntimeError: broken", 0)
    assert await batch(subscription) == []
    assert await batch(subscription) == []
    assert hub.subscriber_count == 0
    assert hub.close("s", "success") is None


async def test_subscriber_of_a_closed_stream_gets_start_history_and_end() -> None:
    hub = Hub()
    hub.open("s", "run1")
    publish_many(hub, "s", 1, 3)
    hub.close("s", "success")
    subscription = hub.subscribe("s")
    assert kinds(await batch(subscription)) == ["start:run1", "1", "2", "3", "end:success"]
    assert await batch(subscription) == []
    assert hub.subscriber_count == 0


async def test_new_run_of_a_finished_id_is_a_fresh_stream() -> None:
    hub = Hub()
    hub.open("demo__5", "run1")
    publish_many(hub, "demo__5", 1, 3)
    old = hub.subscribe("demo__5")
    hub.close("demo__5", "success")

    stream = hub.open("demo__5", "run2")
    assert stream.run_id == "run2" and stream.is_open
    event = hub.publish("demo__5", json.dumps("new"))
    assert event.seq == 1
    fresh = hub.subscribe("demo__5")
    assert kinds(await batch(fresh)) == ["start:run2", "1"]
    assert json.loads(stream.history()[0].frame)["data"] == "new"
    # The subscriber of the first run saw that run only, and is not moved to the new one.
    assert kinds(await drain(old)) == ["start:run1", "1", "2", "3", "end:success"]
    hub.publish("demo__5", json.dumps("more"))
    hub.close("demo__5", "failed", "ValueError: x")
    assert kinds(await drain(fresh)) == ["2", "end:failed"]


def test_open_on_an_open_stream_raises() -> None:
    hub = Hub()
    hub.open("s", "run1")
    with pytest.raises(RuntimeError, match="still open"):
        hub.open("s", "run2")
    stream = hub.get("s")
    assert stream is not None and stream.run_id == "run1"


# -- bounded history -------------------------------------------------------------------------------


async def test_history_keeps_the_head_and_bounds_the_tail_by_count() -> None:
    hub = Hub(keep_head=2, max_events=5, max_bytes=1_000_000)
    stream = hub.open("s", "run1")
    publish_many(hub, "s", 1, 10)
    assert seqs(list(stream.history())) == [1, 2, 8, 9, 10]
    assert stream.dropped == 5
    assert len(stream) == 5
    assert stream.last_seq == 10
    hub.close("s", "success")
    # A late subscriber sees the jump in seq where events were dropped.
    assert kinds(await drain(hub.subscribe("s"))) == [
        "start:run1",
        "1",
        "2",
        "8",
        "9",
        "10",
        "end:success",
    ]


def test_history_bounds_the_tail_by_bytes() -> None:
    hub = Hub(keep_head=1, max_events=100, max_bytes=30)
    stream = hub.open("s", "run1")
    for _ in range(10):
        hub.publish("s", json.dumps("x" * 8))  # 10 bytes of JSON each
    assert seqs(list(stream.history())) == [1, 9, 10]
    assert stream.bytes == 30
    assert stream.dropped == 7


def test_history_head_holds_at_most_half_the_byte_bound() -> None:
    hub = Hub(keep_head=3, max_events=100, max_bytes=50)
    stream = hub.open("s", "run1")
    for _ in range(6):
        hub.publish("s", json.dumps("x" * 18))  # 20 bytes each: one fits in half of 50
    assert [event.seq for event in stream.head] == [1]
    assert seqs(list(stream.history())) == [1, 6]  # 20 + 20 bytes: a third would pass 50
    assert stream.bytes == 40 and stream.dropped == 4


def test_history_after_skips_dropped_and_earlier_events() -> None:
    hub = Hub(keep_head=2, max_events=4, max_bytes=1_000_000)
    stream = hub.open("s", "run1")
    publish_many(hub, "s", 1, 8)
    assert seqs(list(stream.history())) == [1, 2, 7, 8]
    assert seqs(list(stream.history(after=1))) == [2, 7, 8]
    assert seqs(list(stream.history(after=5))) == [7, 8]
    assert stream.history(after=8) == []


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


# -- restore and kept streams ----------------------------------------------------------------------


async def test_restore_brings_a_finished_run_back() -> None:
    hub = Hub()
    stream = hub.restore(
        "demo__5", "run1", [(1, data(1)), (2, data(2)), (5, data(5))], "failed", "ValueError: x"
    )
    assert not stream.is_open
    assert stream.last_seq == 5
    items = await drain(hub.subscribe("demo__5"))
    assert kinds(items) == ["start:run1", "1", "2", "5", "end:failed"]
    end = items[-1]
    assert isinstance(end, StreamEnd) and end.error == "ValueError: x"
    # A new run may start after the restored one.
    assert hub.open("demo__5", "run2").run_id == "run2"


def test_restore_never_replaces_a_run_already_present() -> None:
    hub = Hub()
    running = hub.open("s", "run2")
    hub.publish("s", data(1))
    assert hub.restore("s", "run1", [(1, data(9))], "success") is running
    assert running.is_open and hub.get("s") is running
    assert hub.publish("s", data(2)).seq == 2

    hub.open("done", "run4")
    hub.close("done", "success")
    finished = hub.get("done")
    assert hub.restore("done", "run3", [], "failed") is finished
    assert finished is not None and finished.run_id == "run4"


def test_kept_streams_evicts_the_oldest_finished_streams() -> None:
    hub = Hub(kept_streams=2)
    for name in ("a", "b", "c"):
        hub.open(name, f"run-{name}")
        hub.close(name, "success")
    assert "a" not in hub
    assert "b" in hub and "c" in hub
    hub.restore("r", "run-r", [], "success")
    assert "b" not in hub
    assert "c" in hub and "r" in hub


def test_kept_streams_never_evicts_an_open_stream() -> None:
    hub = Hub(kept_streams=1)
    hub.open("long", "run1")
    hub.close("long", "success")
    hub.open("long", "run2")  # finished once, running again now
    hub.open("other", "run-other")
    for n in range(5):
        hub.open(f"s{n}", f"run{n}")
        hub.close(f"s{n}", "success")
    assert "long" in hub and "other" in hub
    stream = hub.get("long")
    assert stream is not None and stream.is_open and stream.run_id == "run2"
    assert len(hub) == 3


# -- unsubscribe and shutdown ----------------------------------------------------------------------


async def test_unsubscribe_releases_a_waiting_subscriber() -> None:
    hub = Hub()
    subscription = hub.subscribe("never")
    waiting = asyncio.ensure_future(subscription.next_batch())
    await asyncio.sleep(0)
    hub.unsubscribe(subscription)
    assert await asyncio.wait_for(waiting, 1) == []
    assert hub.subscriber_count == 0
    hub.open("never", "run1")
    hub.publish("never", data(1))
    assert subscription.pending == 0
    assert await batch(subscription) == []


async def test_unsubscribe_stops_live_events() -> None:
    hub = Hub()
    stream = hub.open("s", "run1")
    subscription = hub.subscribe("s")
    assert kinds(await batch(subscription)) == ["start:run1"]
    hub.unsubscribe(subscription)
    assert subscription not in stream.subscribers
    hub.publish("s", data(1))
    assert await batch(subscription) == []


async def test_shutdown_releases_every_subscriber() -> None:
    hub = Hub()
    hub.open("s", "run1")
    live = hub.subscribe("s")
    await batch(live)
    waiting_for_run = hub.subscribe("not-yet")
    batches = [
        asyncio.ensure_future(live.next_batch()),
        asyncio.ensure_future(waiting_for_run.next_batch()),
    ]
    await asyncio.sleep(0)
    hub.shutdown()
    assert await asyncio.wait_for(asyncio.gather(*batches), 1) == [[], []]
    assert hub.subscriber_count == 0
    hub.open("not-yet", "run2")
    assert waiting_for_run.pending == 0


async def test_direct_path_hands_frames_to_a_parked_subscriber_in_order() -> None:
    hub = Hub(write_window=0)  # every event is written at once
    hub.open("s", "run1")
    subscription = hub.subscribe("s")
    written: list[bytes] = []
    accept = True

    def direct(frame: bytes) -> bool:
        if accept:
            written.append(frame)
        return accept

    subscription.direct = direct
    first = await asyncio.wait_for(subscription.next_batch(), 1)  # the start marker
    assert isinstance(first[0], Start)
    waiting = asyncio.ensure_future(subscription.next_batch())
    await asyncio.sleep(0)  # parked in next_batch, nothing queued
    one = hub.publish("s", '"a"')
    two = hub.publish("s", '"b"')
    assert written == [one.wire, two.wire] and subscription.delivered_seq == 2
    assert not waiting.done()  # written without waking the consumer
    accept = False  # the connection's buffer is full: the next event is queued
    three = hub.publish("s", '"c"')
    accept = True
    four = hub.publish("s", '"d"')  # something is queued now, so this one queues behind it
    assert written == [one.wire, two.wire]
    assert seqs(await asyncio.wait_for(waiting, 1)) == [three.seq, four.seq]


def test_wire_is_the_websocket_text_frame_of_the_channel_frame() -> None:
    for size in (1, 125, 126, 65535, 65536, 70000):
        event = StreamEvent(7, json.dumps("x" * size))
        wire, payload = event.wire, event.frame.encode()
        assert wire[0] == 0x81 and wire.endswith(payload)
        length = wire[1]
        if length == 126:
            assert int.from_bytes(wire[2:4], "big") == len(payload) and len(wire) == 4 + len(
                payload
            )
        elif length == 127:
            assert int.from_bytes(wire[2:10], "big") == len(payload)
            assert len(wire) == 10 + len(payload)
        else:
            assert length == len(payload) and len(wire) == 2 + len(payload)
