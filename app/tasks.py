"""Django Q's task API (`django_q.tasks`) on top of the runner of the running server.

`async_task("tasks.fn", ...)` takes no app, so these functions use the process's default runner,
which `create_app` installs at startup and removes at cleanup. Each function works from the event
loop (views, async tasks) and from other threads (thread tasks, scripts beside the server); the
ones that wait have an awaitable form, and their blocking form refuses to wait on the loop.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from taskcast import defaults
from taskcast.defaults import call_on_loop
from taskcast.errors import NoRunnerError, TaskcastError, UnknownTaskError
from taskcast.publish import TaskContext, current_task_id, running_in
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.runner import Runner
from taskcast.spec import TaskSpec, build_spec, task_options

__all__ = [
    "TaskRecord",
    "TaskStatus",
    "async_task",
    "cancel",
    "count_group",
    "current_task_id",
    "delete_group",
    "fetch",
    "fetch_group",
    "queue_size",
    "result",
    "result_group",
    "task_options",
    "wait_result",
]

T = TypeVar("T")

#: records of `sync=True` tasks run with no server in this process, so `result()` finds them
_offline_records: collections.OrderedDict[str, TaskRecord] = collections.OrderedDict()
_OFFLINE_KEPT = 1000


def _on_loop(
    runner: Runner, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None
) -> T:
    """Run a coroutine of the runner from another thread and wait for it."""
    return call_on_loop(runner.loop, make, timeout)


async def _submit(runner: Runner, spec: TaskSpec) -> str:
    return runner.submit(spec)


def async_task(
    func: str | Callable[..., Any],
    *args: Any,
    q_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> str:
    """Queue `func(*args, **kwargs)` and return its 32-character id at once.

    Options (Django Q's): hook, group, timeout, save, sync, task_name; with `q_options` given,
    options come only from it and every keyword goes to the function. Taskcast's own options
    (executor, max_attempts, retry_delay) go in q_options or `@task_options`.
    """
    try:
        runner: Runner | None = defaults.RUNNER.get()
    except NoRunnerError:
        runner = None
    spec = build_spec(
        func,
        args,
        kwargs,
        q_options,
        runner.settings.default_timeout if runner is not None else None,
    )
    if spec.sync:
        return _run_sync(runner, spec)
    if runner is None:
        defaults.RUNNER.get()  # raises the error that says how to start a server
        raise AssertionError("unreachable")
    if runner.on_loop_thread():
        return runner.submit(spec)
    return _on_loop(runner, lambda: _submit(runner, spec))


def _run_sync(runner: Runner | None, spec: TaskSpec) -> str:
    """`sync=True`: run now, in this thread or on the server, store it, re-raise its exception."""
    if runner is not None and not runner.on_loop_thread():
        return _on_loop(runner, lambda: runner.run_and_wait(spec)).id
    if runner is not None and spec.kind == "async":
        raise TaskcastError(
            "sync=True cannot wait for an async task on the running event loop: "
            "`await wait_result(async_task(...))` instead"
        )
    task_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    record = spec.new_record(
        task_id, status=TaskStatus.RUNNING, enqueued=now, started=now, attempt_count=1
    ).replace(kind="inline")
    context = TaskContext(task_id, spec.stream_id, lambda data_json: None)
    try:
        with running_in(context):
            value = spec.func(*spec.args, **spec.kwargs)
            if asyncio.iscoroutine(value):
                value = asyncio.run(value)
    except BaseException as exc:
        _keep(
            record.replace(status=TaskStatus.FAILED, stopped=datetime.now(UTC), error=repr(exc)),
            runner,
        )
        raise
    _keep(
        record.replace(status=TaskStatus.SUCCESS, stopped=datetime.now(UTC), result=value), runner
    )
    return task_id


def _keep(record: TaskRecord, runner: Runner | None) -> None:
    if runner is not None:
        runner.store.save_task(record)
        return
    _offline_records[record.id] = record
    while len(_offline_records) > _OFFLINE_KEPT:
        _offline_records.popitem(last=False)


def fetch(task_id_or_name: str) -> TaskRecord | None:
    """The task's record (id, name, func, args, status, times, result, error...), None if unknown."""
    offline = _offline_records.get(task_id_or_name)
    if offline is not None:
        return offline
    return defaults.RUNNER.get().get(task_id_or_name)


def result(task_id_or_name: str, wait: int = 0) -> Any:
    """The result of a successful task, None before it has one.

    `wait` is in milliseconds (-1: forever). Waiting is refused on the event loop's own thread,
    where it would freeze the server: use `await wait_result(...)` there.
    """
    offline = _offline_records.get(task_id_or_name)
    if offline is not None:
        return offline.result if offline.success else None
    runner = defaults.RUNNER.get()
    if wait:
        if runner.on_loop_thread():
            raise TaskcastError(
                "result(..., wait=...) would block the event loop it is called on: use "
                "`await wait_result(task_id, timeout=...)` in async code"
            )
        timeout = None if wait < 0 else wait / 1000
        try:
            record = _on_loop(runner, lambda: _wait(runner, task_id_or_name, timeout), None)
        except TimeoutError:
            return None
        return record.result if record.success else None
    current = runner.get(task_id_or_name)
    return current.result if current is not None and current.success else None


async def _wait(runner: Runner, task_id_or_name: str, timeout: float | None) -> TaskRecord:
    record = runner.get(task_id_or_name)
    if record is None:
        raise UnknownTaskError(f"no task with id or name {task_id_or_name!r}")
    return await runner.wait(record.id, timeout)


async def wait_result(task_id_or_name: str, timeout: float | None = None) -> Any:
    """Await the end of a task and return its result (None unless it succeeded).

    Raises TimeoutError when `timeout` seconds pass first, UnknownTaskError for an unknown id.
    """
    record = await _wait(defaults.RUNNER.get(), task_id_or_name, timeout)
    return record.result if record.success else None


async def wait_task(task_id_or_name: str, timeout: float | None = None) -> TaskRecord:
    """Await the end of a task and return its whole record."""
    return await _wait(defaults.RUNNER.get(), task_id_or_name, timeout)


def cancel(task_id: str) -> bool:
    """Stop a queued or running task (any kind); False if it had already finished."""
    runner = defaults.RUNNER.get()
    if runner.on_loop_thread():
        return runner.cancel(task_id)

    async def do_cancel() -> bool:
        return runner.cancel(task_id)

    return _on_loop(runner, do_cancel)


def _group_records(group: str, failures: bool, count: int | None = None) -> list[TaskRecord]:
    store = defaults.RUNNER.get().store
    status = None if failures else TaskStatus.SUCCESS
    return store.list_tasks(group=group, status=status, limit=count or 1_000_000)


def fetch_group(group: str, failures: bool = True, count: int | None = None) -> list[TaskRecord]:
    """The stored records of a group, newest first (without failures when failures=False)."""
    return _group_records(group, failures, count)


def result_group(
    group: str, failures: bool = False, wait: int = 0, count: int | None = None
) -> list[Any] | None:
    """The results of a group's tasks, oldest first; None when it has none yet.

    With `count`, wait up to `wait` ms (refused on the loop) until that many have finished.
    """
    runner = defaults.RUNNER.get()
    if wait and count:
        if runner.on_loop_thread():
            raise TaskcastError("result_group(..., wait=...) would block the event loop")

        async def until_count() -> None:
            while count_group(group, failures) < count and await runner.wait_any(group):
                pass

        try:
            _on_loop(runner, until_count, None if wait < 0 else wait / 1000)
        except (TimeoutError, concurrent.futures.TimeoutError):
            pass
    records = list(reversed(_group_records(group, failures, count)))
    if not records:
        return None
    return [record.result if record.success else record.error for record in records]


def count_group(group: str, failures: bool = False) -> int:
    """How many of a group's tasks have finished (successfully, unless failures=True)."""
    store = defaults.RUNNER.get().store
    if failures:
        return store.count_tasks(group=group, status=TaskStatus.FAILED)
    return store.count_tasks(group=group, status=TaskStatus.SUCCESS)


def delete_group(group: str, tasks: bool = False) -> int:
    """Delete a group's stored records (and their event history); returns how many."""
    return defaults.RUNNER.get().store.delete_group(group)


def queue_size() -> int:
    """How many tasks are waiting for a free slot now."""
    return defaults.RUNNER.get().queue_size
