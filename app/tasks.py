"""Django Q's task API (`django_q.tasks`) on top of the runner of the running server.

`async_task("tasks.fn", ...)` takes no app, so these functions use the process's default runner,
which `create_app` installs at startup and removes at cleanup. Each function works from the event
loop (views, async tasks) and from other threads (thread tasks, scripts beside the server); the
ones that wait have an awaitable form, and their blocking form refuses to wait on the loop.

The Django Q calls keep Django Q's meaning: `fetch` and `result` see finished tasks only (None
before), a failed task's result is its error text. Taskcast's live view of a task, queued or
running, is `get_task`; `wait_task`/`wait_result` await the end; `cancel` stops a task.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from taskcast import defaults
from taskcast.chains import Chain, Iter, async_chain, async_iter, follow_chain
from taskcast.defaults import call_on_loop, run_on_loop_thread
from taskcast.django_schedule import ScheduleInfo, schedule
from taskcast.errors import NoRunnerError, TaskcastError, UnknownTaskError
from taskcast.groups import count_group, delete_group, fetch_group, result_group
from taskcast.publish import TaskContext, current_task_id, running_in
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.runner import Runner
from taskcast.schedules import Schedule
from taskcast.spec import TaskSpec, build_spec, task_options
from taskcast.tracebacks import error_text
from taskcast.waiting import poll

__all__ = [
    "Chain",
    "Iter",
    "Schedule",
    "ScheduleInfo",
    "TaskRecord",
    "TaskStatus",
    "async_chain",
    "async_iter",
    "async_task",
    "cancel",
    "count_group",
    "current_task_id",
    "delete_group",
    "fetch",
    "fetch_group",
    "get_task",
    "queue_size",
    "result",
    "result_group",
    "schedule",
    "task_options",
    "wait_result",
    "wait_task",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: records of `sync=True` tasks run with no server in this process, so `result()` finds them
_offline_records: collections.OrderedDict[str, TaskRecord] = collections.OrderedDict()
_OFFLINE_KEPT = 1000


def _on_loop(
    runner: Runner, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None
) -> T:
    """Run a coroutine of the runner from another thread and wait for it."""
    return call_on_loop(runner.loop, make, timeout)


def _queue(runner: Runner, spec: TaskSpec) -> str:
    """Submit on the loop's thread; a chain's next call is set up in the same step, before the
    task can end."""
    task_id = runner.submit(spec)
    if spec.chain:
        follow_chain(runner, task_id, spec)
    return task_id


def async_task(
    func: str | Callable[..., Any],
    *args: Any,
    q_options: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> str:
    """Queue `func(*args, **kwargs)` and return its 32-character id at once.

    Options (Django Q's): hook, group, timeout, save, sync, task_name, cached, chain, and
    broker, cluster, ack_failure (ignored, with a warning); an option named in `q_options`
    comes from there, and a keyword of that name goes to the function. Taskcast's own options
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
        task_id = _run_sync(runner, spec)
        if spec.chain:  # as in Django Q, a synchronous chain runs to its end, or raises
            async_chain(list(spec.chain), group=spec.group, sync=True)
        return task_id
    if runner is None:
        defaults.RUNNER.get()  # raises the error that says how to start a server
        raise AssertionError("unreachable")
    if runner.cluster is not None and not spec.chain and not runner.on_loop_thread():
        # The Redis engine, from another thread: return once Redis has the task, so that a
        # stream id taken on another node or an unreachable Redis is this call's error.
        cluster = runner.cluster
        return _on_loop(runner, lambda: cluster.submit_confirmed(spec))
    return run_on_loop_thread(runner, lambda: _queue(runner, spec))


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
        failed = record.replace(
            status=TaskStatus.FAILED, stopped=datetime.now(UTC), error=error_text(exc)
        )
        _keep(failed, runner, spec)
        raise
    done = record.replace(status=TaskStatus.SUCCESS, stopped=datetime.now(UTC), result=value)
    _keep(done, runner, spec)
    return task_id


def _keep(record: TaskRecord, runner: Runner | None, spec: TaskSpec) -> None:
    """Store an inline run's record as the runner would (save=False keeps failures only), and
    call its hook when it is stored, as Django Q does."""
    if not spec.save and record.success:
        return
    if runner is not None:
        runner.store.save_task(record)
    else:
        _offline(record)
    if spec.hook is not None:
        try:
            spec.hook(record)
        except Exception:
            logger.exception("hook %s of task %s failed", spec.hook_path, record.id)


def _offline(record: TaskRecord) -> None:
    _offline_records[record.id] = record
    while len(_offline_records) > _OFFLINE_KEPT:
        _offline_records.popitem(last=False)


def get_task(task_id_or_name: str) -> TaskRecord | None:
    """The task's record now, queued, running or finished; None if there is no such task.

    Taskcast's own call: Django Q's `fetch` only sees finished tasks.
    """
    offline = _offline_records.get(task_id_or_name)
    if offline is not None:
        return offline
    return defaults.RUNNER.get().get(task_id_or_name)


def _finished(task_id_or_name: str) -> TaskRecord | None:
    record = get_task(task_id_or_name)
    return record if record is not None and record.status.is_final else None


def fetch(task_id_or_name: str, wait: int = 0, cached: Any = False) -> TaskRecord | None:
    """The record of a finished task (by id or name), None before it has finished.

    `wait` is in milliseconds (-1: forever). Waiting is refused on the event loop's own thread,
    where it would freeze the server: use `await wait_task(...)` there. `cached` changes nothing.
    """
    return poll(lambda: _finished(task_id_or_name), wait, "fetch")


def result(task_id_or_name: str, wait: int = 0, cached: Any = False) -> Any:
    """The result of a finished task: its return value, or its error text if it failed; None
    before it has finished, and for an unknown task. `wait` as for `fetch`."""
    record = poll(lambda: _finished(task_id_or_name), wait, "result")
    return None if record is None else record.result


async def _wait(runner: Runner, task_id_or_name: str, timeout: float | None) -> TaskRecord:
    record = runner.get(task_id_or_name)
    if record is None and runner.cluster is not None:
        # The Redis engine: another node's task, or one this node's store no longer keeps.
        record = await runner.cluster.record_in_redis(task_id_or_name)
    if record is None:
        raise UnknownTaskError(f"no task with id or name {task_id_or_name!r}")
    return await runner.wait(record.id, timeout)


async def wait_result(task_id_or_name: str, timeout: float | None = None) -> Any:
    """Await the end of a task and return `result()`'s value (the error text if it failed).

    Raises TimeoutError when `timeout` seconds pass first, UnknownTaskError for an unknown id.
    """
    record = await _wait(defaults.RUNNER.get(), task_id_or_name, timeout)
    return record.result


async def wait_task(task_id_or_name: str, timeout: float | None = None) -> TaskRecord:
    """Await the end of a task and return its whole record."""
    return await _wait(defaults.RUNNER.get(), task_id_or_name, timeout)


def cancel(task_id: str) -> bool:
    """Stop a queued or running task (any kind); False if it had already finished."""
    runner = defaults.RUNNER.get()
    return run_on_loop_thread(runner, lambda: runner.cancel(task_id))


def queue_size(broker: Any = None) -> int:
    """How many tasks are waiting for a free slot now."""
    return defaults.RUNNER.get().queue_size
