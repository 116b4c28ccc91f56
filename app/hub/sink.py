"""How the hub writes to a subscriber's connection: the `Sink` a subscriber hands it, the way a
kind of sink writes a whole direct table at once, and the error of a subscriber cut off."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from taskcast.hub.stream import StreamEvent

if TYPE_CHECKING:
    from taskcast.hub.subscription import Subscription


class Sink(Protocol):
    """The subscriber's side of the hub, handed to `Hub.subscribe`. Both methods are called
    inside `publish`, on the loop: they must not block and cannot await."""

    def write(self, events: Sequence[StreamEvent]) -> bool:
        """Write consecutive events straight to the subscriber's connection.

        Called only while its consumer waits in `next_batch` with nothing queued, so nothing
        is ahead of them. False when the connection cannot take them now: they queue instead.
        A sink that stops taking writes for good (its connection is closing) refuses them.
        """
        ...

    def cut_off(self, resume_after: int) -> None:
        """The hub dropped this subscriber as too slow; it may resume after `resume_after`."""
        ...


#: writes events through each sink of a stream's direct table (subscribers mapped to their
#: sinks, all of one kind); returns the subscribers whose sink refused them
WriteEach = Callable[[dict["Subscription", Sink], Sequence[StreamEvent]], Sequence["Subscription"]]


def write_each(
    table: dict[Subscription, Sink], events: Sequence[StreamEvent]
) -> Sequence[Subscription]:
    """Ask each sink in turn: the way for sinks whose kind has no `write_each` of its own.

    A kind of sink may define a static `write_each` with this signature, to write a whole
    table in one pass (the channel's sockets do: a call per subscriber per event is what the
    fan-out costs). Its subscribers are then kept in a table of their own.
    """
    return [sub for sub, sink in table.items() if not sink.write(events)]


class SubscriberTooSlow(Exception):
    """The subscriber fell too far behind; it may subscribe again with `after=resume_after`."""

    def __init__(self, stream_id: str, resume_after: int) -> None:
        super().__init__(f"subscriber of {stream_id!r} too slow: resume after {resume_after}")
        self.stream_id = stream_id
        self.resume_after = resume_after
