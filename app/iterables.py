"""Django Q's iterables: `async_iter`/`Iter`.

An iterable is one function called once per set of arguments, all in a group of their own; when
all have ended, one more task record is stored under the group's id, holding the list of their
results in the order they finished, so that `result(iter_id)` returns that list as in Django Q.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from taskcast.errors import TaskSpecError
from taskcast.followers import after
from taskcast.functions import dotted_path
from taskcast.names import human_name
from taskcast.records import TaskRecord, TaskStatus
from taskcast.store.rows import NEVER

__all__ = ["Iter", "async_iter"]


@dataclasses.dataclass
class _Collation:
    """An iterable's group while its calls end; the record of them all once the last has."""

    group: str
    func: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    total: int
    ended: list[TaskRecord] = dataclasses.field(default_factory=list)

    def add(self, record: TaskRecord) -> TaskRecord | None:
        self.ended.append(record)
        return self.record() if len(self.ended) == self.total else None

    def record(self) -> TaskRecord:
        ended = self.ended
        failed = [record for record in ended if not record.success]
        return TaskRecord(
            id=self.group,
            name=human_name(self.group),
            func=self.func,
            args=self.args,
            kwargs=self.kwargs,
            kind=ended[0].kind,
            status=TaskStatus.FAILED if failed else TaskStatus.SUCCESS,
            enqueued=min((r.enqueued or NEVER for r in ended), default=None),
            started=_earliest(r.started for r in ended),
            stopped=max((r.stopped or NEVER for r in ended), default=None),
            result=[record.result for record in ended],
            error=f"{len(failed)} of {len(ended)} calls failed" if failed else None,
            attempt_count=1,
        )


def _earliest(moments: Iterable[datetime | None]) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return min(known, default=None)


def async_iter(func: Any, args_iter: Sequence[Any], **kwargs: Any) -> str:
    """Call `func` once per item of `args_iter` (a tuple is its arguments), in a group of their
    own; returns the id under which `result()` gives all their results once all have ended."""
    from taskcast import defaults
    from taskcast.tasks import async_task, get_task

    options = dict(kwargs["q_options"]) if "q_options" in kwargs else dict(kwargs)
    options.pop("hook", None)  # as in Django Q: the calls of an iterable have no hook
    items = [item if isinstance(item, tuple) else (item,) for item in args_iter]
    if not items:
        raise TaskSpecError("async_iter needs at least one set of arguments")
    group = uuid.uuid4().hex
    options["group"] = group
    path = func if isinstance(func, str) else dotted_path(func)
    plain = {name: value for name, value in options.items() if name not in _OPTION_KEYS}
    collation = _Collation(group, path, tuple(args_iter), plain, len(items))
    ids = [async_task(func, *item, **options) for item in items]
    if options.get("sync"):
        for task_id in ids:
            record = get_task(task_id)
            if record is not None:
                collation.add(record)
        _store(collation.record())
        return group
    runner = defaults.RUNNER.get()

    def collect(record: TaskRecord) -> None:
        whole = collation.add(record)
        if whole is not None:
            runner.store.save_task(whole)

    def follow_all() -> None:
        for task_id in ids:
            record = runner.get(task_id)
            if record is not None and record.status.is_final:
                collect(record)
            else:
                after(runner, task_id, collect)

    if runner.on_loop_thread():
        follow_all()
    else:
        runner.loop.call_soon_threadsafe(follow_all)
    return group


_OPTION_KEYS = frozenset(
    {"hook", "group", "timeout", "save", "sync", "task_name", "cached", "ack_failure", "chain"}
    | {"broker", "cluster", "iter_count", "iter_cached", "q_options"}
)


def _store(record: TaskRecord) -> None:
    from taskcast import defaults, tasks
    from taskcast.errors import NoRunnerError

    try:
        runner = defaults.RUNNER.get()
    except NoRunnerError:
        tasks._offline(record)
        return
    runner.store.save_task(record)


class Iter:
    """Django Q's `Iter`: one function, sets of arguments added with `append`, run by `run`."""

    def __init__(
        self,
        func: Any = None,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        cached: Any = False,
        sync: bool = False,
        broker: Any = None,
    ) -> None:
        self.func = func
        self.args = args or []
        self.kwargs = kwargs or {}
        self.id = ""
        self.cached = cached
        self.sync = sync
        self.broker = broker
        self.started = False

    def append(self, *args: Any) -> int:
        self.args.append(args)
        self.started = False
        return self.length()

    def run(self) -> str:
        """Queue every call; returns the id of their collected results."""
        options = {**self.kwargs, "cached": self.cached, "sync": self.sync}
        if self.broker is not None:
            options["broker"] = self.broker
        self.id = async_iter(self.func, self.args, **options)
        self.started = True
        return self.id

    def result(self, wait: int = 0) -> Any:
        """The list of results once every call has ended (waiting up to `wait` ms)."""
        from taskcast.tasks import result

        return result(self.id, wait=wait) if self.started else None

    def fetch(self, wait: int = 0) -> TaskRecord | None:
        from taskcast.tasks import fetch

        return fetch(self.id, wait=wait) if self.started else None

    def length(self) -> int:
        return len(self.args)
