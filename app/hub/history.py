"""A stream's kept events as text in blocks, not as one object per event.

A kept stream may hold thousands of events, and a server keeps hundreds of streams. Held as one
object each, every event is something a full garbage collection visits: with 100,000 kept events
that is milliseconds of a stopped loop each time, for data that never points anywhere. Here a
block's events are one string (their JSON texts end to end), with their seqs and offsets in two
`array`s: three objects for up to `BLOCK_EVENTS` events, none pointing to another, so a
collection visits a block, not each event. New events go to an open block (a list), sealed once
it has `BLOCK_EVENTS` events or `BLOCK_CHARS` characters of text; the oldest events are dropped
from the front, and a sealed block goes when its last event does, so what is kept beyond the
bound is at most one block's text.
"""

from __future__ import annotations

import collections
from array import array
from collections.abc import Iterator
from typing import Final

#: a block is sealed at this many events
BLOCK_EVENTS: Final = 256
#: or at this many characters of event text
BLOCK_CHARS: Final = 64 * 1024


class _Block:
    """Sealed events: their seqs, their texts end to end, and where each text begins (one
    offset more than there are events: the last is where the text ends)."""

    __slots__ = ("bounds", "seqs", "text")

    def __init__(self, seqs: array[int], texts: list[str]) -> None:
        self.seqs = seqs
        self.text = "".join(texts)
        bounds = array("q", [0])
        end = 0
        for text in texts:
            end += len(text)
            bounds.append(end)
        self.bounds = bounds

    def events(self, start: int) -> Iterator[tuple[int, str]]:
        bounds, text = self.bounds, self.text
        for index in range(start, len(self.seqs)):
            yield self.seqs[index], text[bounds[index] : bounds[index + 1]]


class EventLog:
    """Events in the order they were appended, dropped from the front: a stream's kept tail."""

    __slots__ = ("_blocks", "_chars", "_first", "_seqs", "_texts")

    def __init__(self) -> None:
        self._blocks: collections.deque[_Block] = collections.deque()
        self._first = 0  # the first kept event's index in the oldest sealed block
        self._seqs = array("q")  # the open block's
        self._texts: list[str] = []
        self._chars = 0  # the open block's characters of text

    def append(self, seq: int, text: str, size: int) -> None:
        """Keep event `seq` after the others; `size` is len(text)."""
        texts = self._texts
        texts.append(text)
        self._seqs.append(seq)
        self._chars += size
        if len(texts) >= BLOCK_EVENTS or self._chars >= BLOCK_CHARS:
            self._blocks.append(_Block(self._seqs, texts))
            self._seqs = array("q")
            self._texts = []
            self._chars = 0

    def popleft(self) -> int:
        """Drop the oldest event; the length of its text. IndexError when empty."""
        blocks = self._blocks
        if blocks:
            first = self._first
            bounds = blocks[0].bounds
            size = bounds[first + 1] - bounds[first]
            first += 1
            if first == len(bounds) - 1:
                blocks.popleft()
                first = 0
            self._first = first
        else:
            if not self._texts:
                raise IndexError("pop from an empty event log")
            del self._seqs[0]
            size = len(self._texts.pop(0))  # at most BLOCK_EVENTS in the open block
            self._chars -= size
        return size

    @property
    def first_seq(self) -> int | None:
        """The seq of the oldest kept event (None when empty)."""
        if self._blocks:
            return self._blocks[0].seqs[self._first]
        return self._seqs[0] if self._seqs else None

    @property
    def last_seq(self) -> int | None:
        if self._seqs:
            return self._seqs[-1]
        return self._blocks[-1].seqs[-1] if self._blocks else None

    def __iter__(self) -> Iterator[tuple[int, str]]:
        """(seq, text) of every kept event, oldest first."""
        first = self._first
        for block in self._blocks:
            yield from block.events(first)
            first = 0
        yield from zip(self._seqs, self._texts, strict=True)

    def __len__(self) -> int:
        sealed = sum(len(block.seqs) for block in self._blocks) - self._first
        return sealed + len(self._texts)
