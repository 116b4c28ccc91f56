"""A failed task's error text shows the user's traceback, whatever kind of task it was."""

from __future__ import annotations

import pytest

from taskcast import tasks
from taskcast.runtime.runner import Runner
from taskcast.tracebacks import clean

T = "tests.support.sample_tasks."


@pytest.mark.parametrize(
    ("func", "executor"), [("fail", None), ("fail", "thread"), ("async_fail", None)]
)
async def test_a_failed_task_shows_only_the_users_frames(
    runner: Runner, func: str, executor: str | None
) -> None:
    options = {"executor": executor} if executor else {}
    task_id = tasks.async_task(T + func, "deep", q_options=options)
    record = await tasks.wait_task(task_id, timeout=10)
    text = record.result
    assert isinstance(text, str) and text == record.error
    assert text.startswith("deep : Traceback (most recent call last):\n")
    assert 'sample_tasks.py", line' in text and "raise ValueError(message)" in text
    assert text.rstrip().endswith("ValueError: deep")
    for machinery in ("_RemoteTraceback", "/app/", "concurrent/futures", "asyncio/", '"""'):
        assert machinery not in text, machinery
    assert text.count("Traceback (most recent call last)") == 1


def test_a_traceback_with_no_frame_of_the_users_is_kept_whole() -> None:
    import taskcast

    inside = f'  File "{taskcast.__file__}", line 1, in f\n    x()\n'
    text = f"Traceback (most recent call last):\n{inside}KeyError: 'x'\n"
    assert clean(text) == text
