"""The pacing of close handshakes: a bounded number begin in each turn of the loop and are under
way at once, in the order they came."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from taskcast.web.close_pacing import BUSY_TURN, MAX_DEFER, ClosePacer


async def let_in_per_turn(
    pacer: ClosePacer, callers: int, hold: asyncio.Event | None = None
) -> tuple[list[int], list[int]]:
    """Start `callers` closes in one turn, each holding its place until `hold` is set (not at
    all without it); the order they were let in, and how many were in by the end of each turn."""
    order: list[int] = []

    async def close(n: int) -> None:
        async with pacer.closing():
            order.append(n)
            if hold is not None:
                await hold.wait()

    closes = [asyncio.create_task(close(n)) for n in range(callers)]
    counts: list[int] = []
    while len(order) < callers and len(counts) < 20 * callers:
        await asyncio.sleep(0)  # one turn of the loop
        counts.append(len(order))
        if hold is not None and len(counts) == 10:
            hold.set()
    await asyncio.gather(*closes)
    return order, counts


def steps(counts: list[int]) -> list[int]:
    return [after - before for before, after in zip([0, *counts], counts, strict=False)]


async def test_at_most_per_turn_begin_in_a_turn_in_the_order_they_came() -> None:
    order, counts = await let_in_per_turn(ClosePacer(per_turn=3), 10)
    assert order == list(range(10))
    assert max(steps(counts)) == 3, counts
    assert len([step for step in steps(counts) if step]) >= 4  # ten callers take four turns


async def test_at_most_in_flight_are_under_way_until_one_finishes() -> None:
    hold = asyncio.Event()
    order, counts = await let_in_per_turn(ClosePacer(per_turn=10, in_flight=4), 12, hold)
    assert order == list(range(12))
    # Four get in; the rest wait, however many turns go by, until the first ones finish.
    assert counts[:9] == [4] * 9, counts
    assert counts[-1] == 12


async def test_a_caller_gets_in_at_once_while_there_is_room() -> None:
    pacer = ClosePacer(per_turn=2)
    async with asyncio.timeout(1):
        async with pacer.closing():
            assert pacer.closing_now == 1
            async with pacer.closing():  # still this turn: no wait for a later one
                assert pacer.closing_now == 2
    assert pacer.closing_now == 0
    assert pacer.waiting == 0


async def test_a_cancelled_caller_gives_its_place_to_the_next() -> None:
    pacer = ClosePacer(per_turn=1, in_flight=1)

    async def close() -> None:
        async with pacer.closing():
            pass

    async with pacer.closing():  # the one place is taken
        first = asyncio.create_task(close())
        second = asyncio.create_task(close())
        await asyncio.sleep(0)  # both wait
        assert pacer.waiting == 2
        first.cancel()
    await asyncio.wait_for(second, 1)
    assert first.cancelled()
    assert (pacer.waiting, pacer.closing_now) == (0, 0)


async def test_a_caller_cancelled_once_let_in_gives_its_place_back() -> None:
    pacer = ClosePacer(per_turn=1, in_flight=1)
    entered = asyncio.Event()

    async def close() -> None:
        async with pacer.closing():
            entered.set()

    async with pacer.closing():
        waiting = asyncio.create_task(close())
        await asyncio.sleep(0)
    # The place is given to `waiting` in the next turn; it is cancelled before it runs.
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert not entered.is_set()
    assert pacer.closing_now == 0
    async with asyncio.timeout(1), pacer.closing():  # the place is free again
        pass


async def test_the_pacer_stops_coming_back_once_nothing_waits() -> None:
    pacer = ClosePacer(per_turn=1)
    await let_in_per_turn(pacer, 3)
    for _ in range(3):
        await asyncio.sleep(0)
    assert pacer._refill is None  # no callback left running every turn for ever


@pytest.mark.parametrize(("per_turn", "in_flight"), [(0, 1), (1, 0)])
def test_both_bounds_must_be_at_least_one(per_turn: int, in_flight: int) -> None:
    with pytest.raises(ValueError, match="per_turn and in_flight must be at least 1"):
        ClosePacer(per_turn=per_turn, in_flight=in_flight)


async def test_after_busy_turns_none_begins_until_a_quiet_turn_or_the_longest_wait() -> None:
    """Turns of BUSY_TURN or more, where live streams' events are due, let no handshake begin;
    a quiet turn does, and so does a wait of MAX_DEFER even if every turn stays busy."""
    pacer = ClosePacer(per_turn=1)
    loop = asyncio.get_running_loop()
    busy_until = loop.time() + MAX_DEFER * 3
    let_in: list[float] = []
    turns = 0

    def busy_turn() -> None:
        nonlocal turns
        turns += 1
        if loop.time() < busy_until:
            time.sleep(BUSY_TURN * 1.5)
            loop.call_soon(busy_turn)

    async def close() -> None:
        async with pacer.closing():
            let_in.append(loop.time())

    first = asyncio.create_task(close())  # room and nobody waiting: in at once
    await asyncio.sleep(0)
    loop.call_soon(busy_turn)
    others = [asyncio.create_task(close()) for _ in range(5)]
    await asyncio.gather(first, *others)
    # The first turns are not known to be busy yet (nothing measured them); after that, while
    # every turn was busy, one was let in per MAX_DEFER (the longest wait), not one a turn.
    began = busy_until - MAX_DEFER * 3
    during = [at for at in let_in if began + 0.01 < at < busy_until]
    assert 1 <= len(during) <= 3, (let_in, busy_until)
    assert all(b - a >= MAX_DEFER * 0.9 for a, b in itertools.pairwise(during))
    # ... and the rest once the turns were quiet again, one a turn.
    assert len(let_in) == 6 and turns > 3 * MAX_DEFER / (BUSY_TURN * 1.5) * 0.5
