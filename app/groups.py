"""Django Q's group calls: `count_group`, `result_group`, `fetch_group`, `delete_group`.

A group's tasks are its finished ones, as in Django Q, whose database only holds finished
tasks: the queued and running ones of a group are not counted or listed. Listings are newest
finished first (Django Q's `Task` is ordered by `-stopped`); `failures` adds every task that did
not succeed (failed, timed out, cancelled, interrupted), whose result is its error text.
`cached=` is accepted and changes nothing: the results are where the caller looks either way.
"""

from __future__ import annotations

import time
from typing import Any

from taskcast import defaults
from taskcast.records import FAILURE_STATUSES, FINAL_STATUSES, TaskRecord, TaskStatus
from taskcast.store.rows import NEVER
from taskcast.waiting import left_of, poll

__all__ = ["count_group", "delete_group", "fetch_group", "result_group"]

#: the most records one group listing reads
GROUP_LIMIT = 1_000_000


def finished_in(group: str, failures: bool) -> list[TaskRecord]:
    """The group's finished tasks, newest finished first; only the successes unless `failures`."""
    store = defaults.RUNNER.get().store
    status = None if failures else TaskStatus.SUCCESS
    records = [
        record
        for record in store.list_tasks(group=group, status=status, limit=GROUP_LIMIT)
        if record.status in FINAL_STATUSES
    ]
    records.sort(key=lambda record: record.stopped or NEVER, reverse=True)
    return records


def count_group(group: str, failures: bool = False, cached: Any = False) -> int:
    """How many of the group's tasks have finished; with `failures`, how many did not succeed."""
    store = defaults.RUNNER.get().store
    statuses = FAILURE_STATUSES if failures else FINAL_STATUSES
    return sum(store.count_tasks(group=group, status=status) for status in statuses)


def _wait_for_count(group: str, count: int | None, wait: int, call: str) -> None:
    """Django Q's `count=`: block until that many have finished, or `wait` ms if it is > 0."""
    if count:  # running out of time is no error: the list so far is returned
        poll(lambda: True if count_group(group) >= count else None, wait or -1, call)


def fetch_group(
    group: str,
    failures: bool = True,
    wait: int = 0,
    count: int | None = None,
    cached: Any = False,
) -> list[TaskRecord] | None:
    """The group's finished tasks (newest first), None while it has none."""
    since = time.monotonic()
    _wait_for_count(group, count, wait, "fetch_group")
    return poll(lambda: finished_in(group, failures) or None, left_of(wait, since), "fetch_group")


def result_group(
    group: str,
    failures: bool = False,
    wait: int = 0,
    count: int | None = None,
    cached: Any = False,
) -> list[Any] | None:
    """The results of the group's finished tasks (newest first), None while it has none."""
    since = time.monotonic()
    _wait_for_count(group, count, wait, "result_group")
    records = poll(
        lambda: finished_in(group, failures) or None, left_of(wait, since), "result_group"
    )
    return None if records is None else [record.result for record in records]


def delete_group(group: str, tasks: bool = False, cached: Any = False) -> int:
    """Take the group's label off its tasks and keep them; with `tasks=True`, delete them (and
    their event history). Returns how many tasks it changed."""
    store = defaults.RUNNER.get().store
    return store.delete_group(group) if tasks else store.clear_group(group)
