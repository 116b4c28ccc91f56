"""A task module whose `init_schedule` defines, on every node that loads it, a schedule that
runs each second and is told its due time (the real-node schedule test)."""

from __future__ import annotations

from typing import Any

from taskcast.schedules.helpers import in_second_intervals

NAME = "every-second"


def init_schedule(scheduler: Any) -> None:
    scheduler.schedule(
        "tests.support.sample_tasks.note_run",
        NAME,
        name=NAME,
        rule=in_second_intervals(1),
        intended_date_kwarg="due",
    )
