"""Helpers shared by the hub's tests: event data, reading a subscription, outlining items."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from taskcast.hub.hub import Hub, Item, Start, StreamEvent, Subscription


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


def seqs(items: Sequence[Item]) -> list[int]:
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


class CutOffs:
    """A sink that takes no direct writes and notes where each cut-off said to resume."""

    def __init__(self) -> None:
        self.resume_points: list[int] = []

    def write(self, events: Sequence[StreamEvent]) -> bool:
        return False

    def cut_off(self, resume_after: int) -> None:
        self.resume_points.append(resume_after)
