"""The garbage collector's tuning: on for a server of its own, off when embedded unless asked,
undone at cleanup; and what the health check says about limits, blocks and pauses."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from taskcast import collector
from taskcast.settings import Settings
from taskcast.web.embed import setup
from taskcast.web.factory import create_app

TUNED = Settings().gc_thresholds


async def state_while_serving(app: web.Application) -> tuple[tuple[int, int, int], int]:
    async with TestClient(TestServer(app)) as client:
        await client.get("/")  # served: start-up has completed
        return gc.get_threshold(), gc.get_freeze_count()


@pytest.fixture
def untuned() -> tuple[int, int, int]:
    """The thresholds before the test, which every test here must find again at its end."""
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0, "a frozen generation left over by another test"
    return before


async def test_a_server_of_its_own_is_tuned_while_it_runs_and_untuned_after(
    tmp_path: Path, untuned: tuple[int, int, int]
) -> None:
    app = create_app(database=str(tmp_path / "db.sqlite3"), process_workers=1)
    thresholds, frozen = await state_while_serving(app)
    assert thresholds == TUNED and frozen > 1000  # modules, classes, the app's routes...
    assert gc.get_threshold() == untuned and gc.get_freeze_count() == 0


async def young_collections_within(seconds: float) -> int:
    """Young collections that start while the loop idles for `seconds`."""
    started: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            started.append(1)

    gc.callbacks.append(note)
    try:
        await asyncio.sleep(seconds)
    finally:
        gc.callbacks.remove(note)
    return len(started)


async def test_a_tuned_server_collects_the_young_generation_on_a_timer(
    tmp_path: Path, untuned: tuple[int, int, int]
) -> None:
    """Allocations and deaths that balance never reach the threshold, so the young generation
    would grow unbounded between collections: the timer collects it every YOUNG_EVERY s."""
    app = create_app(database=str(tmp_path / "db.sqlite3"), process_workers=1)
    async with TestClient(TestServer(app)) as client:
        await client.get("/")
        idle = await young_collections_within(collector.YOUNG_EVERY * 5.5)
    assert 3 <= idle <= 7, f"{idle} young collections in {collector.YOUNG_EVERY * 5.5} s"
    assert await young_collections_within(collector.YOUNG_EVERY * 3) == 0, "the timer outlived it"


async def test_tuning_can_be_turned_off_or_set(
    tmp_path: Path, untuned: tuple[int, int, int]
) -> None:
    off = create_app(database=str(tmp_path / "a.sqlite3"), process_workers=1, gc_tuning=False)
    assert await state_while_serving(off) == (untuned, 0)
    chosen = create_app(
        database=str(tmp_path / "b.sqlite3"), process_workers=1, gc_thresholds=[5000, 15, 30]
    )
    assert (await state_while_serving(chosen))[0] == (5000, 15, 30)
    assert gc.get_threshold() == untuned


async def test_an_embedding_host_keeps_its_own_collector_settings_unless_it_asks(
    tmp_path: Path, untuned: tuple[int, int, int]
) -> None:
    host = web.Application()
    setup(host, database=str(tmp_path / "a.sqlite3"), process_workers=1)
    assert await state_while_serving(host) == (untuned, 0)
    asking = web.Application()
    setup(asking, database=str(tmp_path / "b.sqlite3"), process_workers=1, gc_tuning=True)
    assert (await state_while_serving(asking))[0] == TUNED
    assert gc.get_threshold() == untuned and gc.get_freeze_count() == 0


@pytest.mark.parametrize("thresholds", [(1, 2), (0, 10, 10), (700, "10", 10), [700, 10, 10, 10]])
def test_thresholds_are_three_positive_whole_numbers(thresholds: object) -> None:
    with pytest.raises(ValueError, match="gc_thresholds must be three whole numbers"):
        Settings.build(None, gc_thresholds=thresholds)


async def test_health_shows_limits_per_kind_and_the_loop(tmp_path: Path) -> None:
    app = create_app(database=str(tmp_path / "db.sqlite3"), process_workers=1, max_async_tasks=7)
    async with TestClient(TestServer(app)) as client:
        health = await (await client.get("/api/health")).json()
        frozen_while_serving = gc.get_freeze_count()
    assert health["limits"] == {
        "async": {"limit": 7, "running": 0, "waiting": 0, "held": False},
        "thread": {"limit": 8, "running": 0, "waiting": 0, "held": False},
        "process": {"limit": 1, "running": 0, "waiting": 0, "held": False},
    }
    loop = health["loop"]
    assert set(loop) == {"blocks", "longest_block_ms", "collector"}
    assert loop["collector"]["thresholds"] == list(TUNED)
    assert len(loop["collector"]["collections"]) == 3
    # What the tuning froze, noted once (counting them walks them all); some have been freed
    # since, and nothing joins them until another freeze.
    assert loop["collector"]["frozen"] >= frozen_while_serving > 1000


async def test_health_of_an_untuned_embedding_says_nothing_is_frozen(tmp_path: Path) -> None:
    host = web.Application()
    setup(host, database=str(tmp_path / "a.sqlite3"), process_workers=1)
    async with TestClient(TestServer(host)) as client:
        health = await (await client.get("/taskcast/api/health")).json()
    assert health["loop"]["collector"]["frozen"] == 0


async def test_health_without_a_watchdog_says_so(tmp_path: Path) -> None:
    app = create_app(database=str(tmp_path / "db.sqlite3"), process_workers=1, loop_block_warning=0)
    async with TestClient(TestServer(app)) as client:
        health = await (await client.get("/api/health")).json()
    assert health["loop"] is None


async def test_young_collections_that_take_long_come_sooner_and_quick_ones_later_again() -> None:
    """Thousands of streams ending together leave many young objects alive: a collection that
    takes longer than YOUNG_PAUSE halves the interval (down to YOUNG_EVERY_MIN), so each pause
    is shorter; quick ones double it back up to the interval asked for."""
    loop = asyncio.get_running_loop()
    slow = True

    def collect(generation: int) -> None:
        assert generation == 0
        if slow:
            time.sleep(collector.YOUNG_PAUSE * 2)

    tuning = collector.Tuning(gc.get_threshold(), 0, loop, 0.1, collect=collect)
    try:
        intervals = []
        for _ in range(5):
            tuning._collect_young()
            intervals.append(tuning.interval)
        assert intervals == [0.05, 0.025, 0.0125, 0.0125, 0.0125]
        timer = tuning._timer
        assert timer is not None and timer.when() - loop.time() <= 0.0125
        slow = False
        for _ in range(5):
            tuning._collect_young()
            intervals.append(tuning.interval)
        assert intervals[5:] == [0.025, 0.05, 0.1, 0.1, 0.1]
    finally:
        tuning.undo()
