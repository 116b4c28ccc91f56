"""The core: store -> hub -> runner -> scheduler, started in order and closed in reverse."""

from __future__ import annotations

import pytest

from taskcast import defaults
from taskcast.core import Core
from taskcast.errors import NoRunnerError, StoreError
from taskcast.settings import Settings
from taskcast.spec import build_spec

IDENTITY = "tests.support.sample_tasks.async_identity"


async def test_start_installs_the_defaults_and_close_removes_them(settings: Settings) -> None:
    core = Core(settings)
    await core.start()
    assert defaults.RUNNER.get() is core.runner and defaults.SCHEDULER.get() is core.scheduler
    record = await core.runner.run_and_wait(build_spec(IDENTITY, ("x",), {}))
    assert record.result == "x"
    await core.close()
    assert core.runner.closing
    with pytest.raises(NoRunnerError):
        defaults.RUNNER.get()
    with pytest.raises(NoRunnerError):
        defaults.SCHEDULER.get()
    with pytest.raises(StoreError, match="closed"):
        core.store.open()


async def test_a_part_that_fails_to_start_takes_down_the_ones_before_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = Core(settings)
    assert core.scheduler is not None

    async def broken() -> None:
        raise OSError("the schedule database is unreadable")

    monkeypatch.setattr(core.scheduler, "start", broken)
    with pytest.raises(OSError, match="unreadable"):
        await core.start()
    assert core.runner.closing
    with pytest.raises(NoRunnerError):
        defaults.RUNNER.get()
    with pytest.raises(StoreError, match="closed"):
        core.store.open()
    await core.close()  # nothing is left to close, and saying so twice is harmless


async def test_a_core_without_schedules(settings: Settings) -> None:
    core = Core(settings, schedules=False)
    assert core.scheduler is None
    await core.start()
    assert defaults.RUNNER.get() is core.runner
    with pytest.raises(NoRunnerError):
        defaults.SCHEDULER.get()
    await core.close(grace=0)
    with pytest.raises(NoRunnerError):
        defaults.RUNNER.get()
