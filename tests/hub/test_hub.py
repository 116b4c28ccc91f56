"""Tests of taskcast.hub.hub: publishing, subscribing with replay then live, restore, kept
streams, unsubscribe and shutdown."""

from __future__ import annotations

import asyncio
import json

import pytest

from taskcast.hub.hub import Hub, Item, StreamEnd, Subscription
from tests.hub.support import batch, data, drain, kinds, publish_many

# -- publishing ------------------------------------------------------------------------------------


def test_publish_numbers_events_from_one_in_order() -> None:
    hub = Hub()
    stream = hub.open("demo__1", "run1")
    events = [hub.publish("demo__1", data(n)) for n in range(1, 6)]
    assert [event.seq for event in events] == [1, 2, 3, 4, 5]
    assert [event.data for event in events] == [f"<li>{n}</li>" for n in range(1, 6)]
    assert stream.last_seq == 5
    assert [(e.seq, e.data_json) for e in stream.history()] == [
        (e.seq, e.data_json) for e in events
    ]


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
    assert stream.history()[0].data == "new"
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
