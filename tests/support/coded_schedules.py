"""A task module whose `init_schedule` defines a schedule in code (schedule page tests)."""

from __future__ import annotations

from typing import Any

from taskcast.schedules.helpers import hourly


def init_schedule(scheduler: Any) -> None:
    scheduler.add_task(hourly(at=15), "tests.support.sample_tasks.note_run", "coded")
