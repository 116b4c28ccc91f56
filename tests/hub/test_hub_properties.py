"""Properties of the hub under any interleaving of publishes, subscribes, reads, unsubscribes
and resumes: every reader sees an ordered, duplicate-free suffix of the stream, with no gap
but where the history bound dropped events before the reader asked for them.

The hub is driven synchronously: `next_batch()` returns without awaiting whenever it has
something to return, so a coroutine step either gives the batch or shows it would wait.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from taskcast.hub.hub import Hub, Start, StreamEnd, StreamEvent, SubscriberTooSlow, Subscription
from tests.hub.support import CutOffs

STREAM = "s"


def take(subscription: Subscription) -> list[Any] | None:
    """What `next_batch()` returns now; None when it would wait for more."""
    step = subscription.next_batch()
    try:
        step.send(None)
    except StopIteration as done:
        batch: list[Any] = done.value
        return batch
    except RuntimeError:  # it asked for the running loop: it would wait
        step.close()
        return None
    step.close()
    raise AssertionError("next_batch awaited something other than new items")


class Reader:
    """One page following the stream: its subscriptions one after another, what it saw."""

    def __init__(self, number: int, after: int) -> None:
        self.number = number
        self.first_after = after
        self.seen: list[tuple[int, str]] = []
        self.skipped: set[int] = set()  # seqs the history no longer had when this reader asked
        self.subscription: Subscription | None = None
        self.cut_off_at: int | None = None
        self.ended = False
        self.left = False  # gone for good: not expected to read to the end

    @property
    def last(self) -> int:
        return self.seen[-1][0] if self.seen else self.first_after

    def __repr__(self) -> str:
        return f"Reader({self.number}, after={self.first_after}, seen={len(self.seen)})"


class HubMachine(RuleBasedStateMachine):
    """One stream, many readers; the model is the list of everything published."""

    readers = Bundle("readers")

    def __init__(self) -> None:
        super().__init__()
        self.hub = Hub()
        self.published: list[str] = []
        self.opened = False
        self.closed = False
        self.all_readers: list[Reader] = []

    @initialize(
        max_events=st.integers(5, 40),
        keep_head=st.integers(0, 4),
        max_pending=st.integers(1, 12),
    )
    def limits(self, max_events: int, keep_head: int, max_pending: int) -> None:
        self.max_events = max_events
        self.hub = Hub(max_events=max_events, keep_head=keep_head, max_pending=max_pending)

    # -- the task's side ---------------------------------------------------------------------

    @precondition(lambda self: not self.opened)
    @rule()
    def open(self) -> None:
        self.hub.open(STREAM, "run")
        self.opened = True

    @precondition(lambda self: self.opened and not self.closed)
    @rule(data=st.one_of(st.integers(), st.text(max_size=5)), times=st.integers(1, 15))
    def publish(self, data: Any, times: int) -> None:
        for _ in range(times):
            data_json = json.dumps([len(self.published), data])
            event = self.hub.publish(STREAM, data_json)
            self.published.append(data_json)
            assert event.seq == len(self.published)

    @precondition(lambda self: self.opened and not self.closed)
    @rule()
    def close(self) -> None:
        end = self.hub.close(STREAM, "success")
        assert end is not None and end.last_seq == len(self.published)
        self.closed = True

    # -- the readers' side -------------------------------------------------------------------

    def _subscribe(self, reader: Reader, after: int) -> None:
        stream = self.hub.get(STREAM)
        if stream is not None:
            kept = {event.seq for event in stream.history(after)}
            reader.skipped |= set(range(after + 1, stream.last_seq + 1)) - kept
        reader.subscription = self.hub.subscribe(STREAM, after)
        reader.cut_off_at = None

    @rule(target=readers, after=st.integers(0, 60))
    def subscribe(self, after: int) -> Reader:
        after = min(after, len(self.published) + 3)  # past the end: a page resuming a longer run
        reader = Reader(len(self.all_readers), after)
        self.all_readers.append(reader)
        self._subscribe(reader, after)
        return reader

    @rule(reader=readers)
    def read(self, reader: Reader) -> None:
        if reader.subscription is None or reader.ended:
            return
        try:
            batch = take(reader.subscription)
        except SubscriberTooSlow as slow:
            assert slow.resume_after == reader.last, (slow.resume_after, reader)
            reader.subscription = None
            reader.cut_off_at = slow.resume_after
            return
        if batch is None:
            return
        if batch == []:
            assert reader.ended
            return
        for item in batch:
            if isinstance(item, Start):
                assert item.run_id == "run"
            elif isinstance(item, StreamEvent):
                reader.seen.append((item.seq, item.data_json))
            else:
                assert isinstance(item, StreamEnd) and item is batch[-1]
                assert item.last_seq == len(self.published)
                reader.ended = True

    @rule(reader=readers)
    def unsubscribe(self, reader: Reader) -> None:
        if reader.subscription is not None:
            self.hub.unsubscribe(reader.subscription)
            reader.subscription = None

    @rule(reader=readers)
    def resume(self, reader: Reader) -> None:
        if reader.subscription is None and not reader.ended:
            self._subscribe(reader, reader.last)

    @rule(reader=consumes(readers))
    def leave(self, reader: Reader) -> None:
        self.unsubscribe(reader)
        reader.left = True

    # -- what must always hold ---------------------------------------------------------------

    @invariant()
    def readers_see_an_ordered_suffix(self) -> None:
        for reader in self.all_readers:
            seqs = [seq for seq, _ in reader.seen]
            assert seqs == sorted(set(seqs)), f"out of order or duplicated: {seqs}"
            for seq, data_json in reader.seen:
                assert data_json == self.published[seq - 1]
            expected = range(reader.first_after + 1, reader.last + 1)
            missing = set(expected) - set(seqs)
            assert missing <= reader.skipped, f"{reader}: gap {sorted(missing - reader.skipped)}"

    @invariant()
    def subscriber_count_is_every_follower_and_waiter(self) -> None:
        stream = self.hub.get(STREAM)
        following = len(stream.subscribers) if stream is not None else 0
        waiting = len(self.hub._waiting.get(STREAM, ()))
        assert self.hub.subscriber_count == following + waiting

    @invariant()
    def memory_within_the_limits(self) -> None:
        stream = self.hub.get(STREAM)
        if stream is not None:
            assert len(stream) <= self.max_events

    def teardown(self) -> None:
        """Finish the stream, let every reader that stayed read to the end (resuming when cut
        off), and check that each saw everything after its start but what history dropped."""
        if not self.opened:
            self.open()
        if not self.closed:
            self.close()
        for reader in self.all_readers:
            if reader.left:
                continue
            for _ in range(len(self.published) + 10):
                if reader.ended:
                    break
                if reader.subscription is None:
                    self.resume(reader)
                self.read(reader)
            assert reader.ended, reader
            expected = set(range(reader.first_after + 1, len(self.published) + 1))
            seen = {seq for seq, _ in reader.seen}
            assert seen | reader.skipped >= expected and not seen & reader.skipped


class RoomyHubMachine(HubMachine):
    """History large enough for everything: every reader's suffix is gapless."""

    @initialize(max_pending=st.integers(1, 12))
    def limits(self, max_pending: int) -> None:
        self.max_events = 100_000
        self.hub = Hub(max_events=self.max_events, keep_head=2, max_pending=max_pending)

    @invariant()
    def no_gap_at_all(self) -> None:
        for reader in self.all_readers:
            assert not reader.skipped
            seqs = [seq for seq, _ in reader.seen]
            assert seqs == list(range(reader.first_after + 1, reader.last + 1))


PROFILE = settings(
    database=None,  # no .hypothesis folder in the checkout; failures print their steps
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestHubProperties = HubMachine.TestCase
TestHubProperties.settings = PROFILE
TestRoomyHubProperties = RoomyHubMachine.TestCase
TestRoomyHubProperties.settings = PROFILE


def test_close_on_a_queue_filled_exactly_ends_the_subscriber_without_a_cut_off() -> None:
    hub = Hub(max_pending=3)
    hub.open(STREAM, "run")
    cut_offs = CutOffs()
    subscription = hub.subscribe(STREAM, sink=cut_offs)
    for n in range(3):
        hub.publish(STREAM, str(n))
    hub.close(STREAM, "success")
    batch = take(subscription)
    assert batch is not None
    assert [item.seq for item in batch if isinstance(item, StreamEvent)] == [1, 2, 3]
    assert isinstance(batch[-1], StreamEnd)
    assert cut_offs.resume_points == []


def test_a_subscription_never_gets_events_at_or_before_its_after() -> None:
    hub = Hub()
    hub.open(STREAM, "run")
    subscription = hub.subscribe(STREAM, after=2)
    for n in range(4):
        hub.publish(STREAM, str(n))
    batch = take(subscription)
    assert batch is not None
    assert [item.seq for item in batch if isinstance(item, StreamEvent)] == [3, 4]
