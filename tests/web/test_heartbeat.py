"""The channel's heartbeat (taskcast.web.heartbeat): silent sockets are pinged once their period
has passed, sockets that do not answer are dropped, closed ones are left alone, and a crowd that
comes due together is pinged over several turns of the loop, from one timer."""

from __future__ import annotations

import asyncio
import gc
import math
import time
import weakref
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from taskcast import tasks
from taskcast.web.heartbeat import COMPACT_AFTER, PER_TURN, SPREAD, Beat, Heartbeat
from taskcast.web.socket_sink import ChannelSocket
from taskcast.web.wire import PING_FRAME
from tests.support.eventually import eventually
from tests.support.wsclient import CHANNEL, read_until_closed

PERIOD = 0.08  # each socket's period is between 0.04 and 0.08 s
EVENTS = "tests.support.sample_tasks.async_events"


class Peer:
    """A socket as the heartbeat sees it: its websocket's `closed` and its transport."""

    def __init__(self) -> None:
        self.closed = False  # the websocket's
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted

    @property
    def pings(self) -> int:
        return self.written.count(PING_FRAME)


def opened(heartbeat: Heartbeat, peer: Peer) -> Beat:
    return heartbeat.add(cast(web.WebSocketResponse, peer), cast(asyncio.Transport, peer))


async def test_a_silent_socket_is_pinged_within_its_period_and_one_heard_from_is_not() -> None:
    heartbeat = Heartbeat(PERIOD)
    silent, talking = Peer(), Peer()
    opened(heartbeat, silent)
    beat = opened(heartbeat, talking)
    assert PERIOD * (1 - SPREAD) <= beat.period <= PERIOD
    loop = asyncio.get_running_loop()
    began = loop.time()
    while loop.time() - began < PERIOD * 1.5:
        beat.heard()  # a frame now and then: never silent for a whole period
        await asyncio.sleep(PERIOD / 10)
    assert silent.pings == 1  # pinged (and dropped, if its pong was due already)
    assert talking.pings == 0 and not talking.aborted
    heartbeat.stop()


async def test_a_socket_that_answers_stays_and_one_that_does_not_is_dropped() -> None:
    heartbeat = Heartbeat(PERIOD)
    answering, gone = Peer(), Peer()
    beat = opened(heartbeat, answering)
    opened(heartbeat, gone)

    async def answer() -> None:
        while True:
            if answering.pings > len(pongs):
                pongs.append(asyncio.get_running_loop().time())
                beat.heard()  # its pong
            await asyncio.sleep(0.002)

    pongs: list[float] = []
    answerer = asyncio.ensure_future(answer())
    try:
        await eventually(lambda: gone.aborted, 2, "the peer that answers nothing is dropped")
        assert gone.pings == 1  # one ping, then the drop, half a period later at most
        await eventually(lambda: answering.pings >= 3, 2, "pinged again after each pong")
        assert not answering.aborted
        assert heartbeat.dropped == 1 and heartbeat.pings >= 4
    finally:
        answerer.cancel()
        heartbeat.stop()


async def test_a_closed_or_removed_socket_is_never_pinged() -> None:
    heartbeat = Heartbeat(PERIOD)
    closed, removed = Peer(), Peer()
    opened(heartbeat, closed)
    heartbeat.remove(opened(heartbeat, removed))
    closed.closed = True  # its close frame went out: nothing may follow it
    await asyncio.sleep(PERIOD * 2)
    assert closed.written == [] and removed.written == []
    assert len(heartbeat) == 0  # their entries were dropped as they came up
    heartbeat.stop()


async def test_a_crowd_that_comes_due_together_is_pinged_over_several_turns() -> None:
    heartbeat = Heartbeat(PERIOD)
    peers = [Peer() for _ in range(PER_TURN * 8)]
    for peer in peers:
        opened(heartbeat, peer)
    turns: list[int] = []

    def count() -> None:
        turns.append(sum(peer.pings for peer in peers))
        if turns[-1] < len(peers):
            asyncio.get_running_loop().call_soon(count)

    def busy() -> None:
        time.sleep(PERIOD * 1.1)  # the loop is busy: every one of them comes due, none swept
        asyncio.get_running_loop().call_soon(count)

    asyncio.get_running_loop().call_soon(busy)
    await eventually(lambda: all(peer.pings == 1 for peer in peers), 2, "all pinged")
    pinged_per_turn = [b - a for a, b in zip([0, *turns], turns, strict=False)]
    assert max(pinged_per_turn) <= PER_TURN, pinged_per_turn
    heartbeat.stop()


async def test_pongs_and_closes_cancel_no_timer(monkeypatch: Any) -> None:
    """asyncio rebuilds its timer heap once half its handles are cancelled: the heartbeat
    cancels none when sockets answer or close, and sweeps at most once a granule."""
    loop = asyncio.get_running_loop()
    made: list[float] = []
    cancelled: list[asyncio.TimerHandle] = []
    call_at, cancel = loop.call_at, asyncio.TimerHandle.cancel

    def counting_call_at(when: float, callback: Any, *args: Any, **kw: Any) -> asyncio.TimerHandle:
        if getattr(callback, "__self__", None) is heartbeat:
            made.append(when)
        return call_at(when, callback, *args, **kw)

    def counting_cancel(handle: asyncio.TimerHandle) -> None:
        if getattr(getattr(handle, "_callback", None), "__self__", None) is heartbeat:
            cancelled.append(handle)
        cancel(handle)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    monkeypatch.setattr(asyncio.TimerHandle, "cancel", counting_cancel)
    heartbeat = Heartbeat(PERIOD)
    beats = [opened(heartbeat, Peer()) for _ in range(200)]
    # The timer moves only for a socket due before every other one: a few times in 200.
    assert len(made) <= 20 and len(cancelled) == len(made) - 1, (len(made), len(cancelled))
    made.clear()
    cancelled.clear()
    began = loop.time()
    for _ in range(12):  # 200 sockets that answer, then close
        for beat in beats:
            beat.heard()
        await asyncio.sleep(PERIOD / 4)
    for beat in beats:
        heartbeat.remove(beat)
    await asyncio.sleep(PERIOD * 2)
    assert cancelled == []
    assert len(made) <= (loop.time() - began) / heartbeat.granule + 1, len(made)
    assert len(heartbeat) == 0
    heartbeat.stop()


async def test_a_removed_beat_lets_go_of_its_socket_before_its_entry_comes_up() -> None:
    heartbeat = Heartbeat(60.0)  # the entry stays in the heap for a minute
    peer = Peer()
    beat = opened(heartbeat, peer)
    gone = weakref.ref(peer)
    heartbeat.remove(beat)
    del peer
    gc.collect()
    assert gone() is None, "the heartbeat kept a closed socket alive"
    assert len(heartbeat) == 1  # its entry is dropped only when it comes up
    heartbeat.stop()


async def test_closed_sockets_entries_go_once_they_outnumber_the_live_ones() -> None:
    """Each closed socket's entry would bring a sweep of its own when it came up: after a crowd
    of sockets closes, the heap is rebuilt without them, and the live ones are still pinged."""
    heartbeat = Heartbeat(PERIOD)
    peers = [Peer() for _ in range(100)]
    beats = [opened(heartbeat, peer) for peer in peers]
    for beat in beats[:70]:
        heartbeat.remove(beat)
    assert len(heartbeat) < 100 - COMPACT_AFTER, len(heartbeat)  # rebuilt, not waited for
    live = peers[70:]
    await eventually(lambda: all(peer.pings for peer in live), 2, "every live socket pinged")
    assert not any(peer.written for peer in peers[:70])
    heartbeat.stop()


async def test_closed_channel_sockets_are_not_kept_for_a_heartbeat_period(
    client: TestClient[web.Request, web.Application],
) -> None:
    """A closed connection's request, handler task and exceptions go with it, not up to a
    heartbeat period later (15 to 30 s at the default): after a burst of short-lived
    subscribers they were tens of megabytes."""
    task_id = tasks.async_task(EVENTS, task_publish_id="closed", count=5)
    await tasks.wait_task(task_id, timeout=10)
    for _ in range(10):
        ws = await client.ws_connect(CHANNEL)
        await ws.send_json({"id": "aio__closed"})
        frames = await read_until_closed(ws)
        assert frames[-1] == {"status": "stop", "state": "success"}

    def live_sockets() -> int:
        gc.collect()
        return sum(isinstance(o, ChannelSocket) for o in gc.get_objects())

    await eventually(lambda: live_sockets() == 0, 3, "closed channel sockets freed")


@pytest.mark.parametrize("seconds", [0, -1.0, math.inf, math.nan])
def test_a_heartbeat_of_no_positive_length_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        Heartbeat(seconds)
