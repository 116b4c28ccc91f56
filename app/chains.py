"""Django Q's chains and iterables: `async_chain`/`Chain` and `async_iter`/`Iter`.

A chain is calls run one after the other in one group: each is queued when the one before it
has ended, whether it succeeded or not (Django Q queues the next one when it saves a result).
An iterable is one function called once per set of arguments, all in a group of their own; when
all have ended, one more task record is stored under the group's id, holding the list of their
results in the order they finished, so that `result(iter_id)` returns that list as in Django Q.

What comes after a task is set up on the loop's thread in the step that queues it, and runs from
a listener of the runner, so it cannot miss the task's end.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from taskcast.errors import TaskSpecError
from taskcast.groups import count_group, delete_group, fetch_group, result_group
from taskcast.names import human_name
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.runner import Runner
from taskcast.spec import TaskSpec, dotted_path, import_callable
from taskcast.store.rows import NEVER

__all__ = ["Chain", "Iter", "async_chain", "async_iter", "follow_chain"]

logger = logging.getLogger(__name__)

Then = Callable[[TaskRecord], None]
Link = tuple[Any, tuple[Any, ...], dict[str, Any]]


class _Followers:
    """What to do after given tasks of one runner have ended."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._after: dict[str, Then] = {}
        runner.add_listener(self._changed)

    def after(self, task_id: str, then: Then) -> None:
        self._after[task_id] = then

    def _changed(self, record: TaskRecord) -> None:
        if record.status.is_final and (then := self._after.pop(record.id, None)) is not None:
            # Later in this loop turn: the runner is still in the middle of ending the task.
            self._runner.loop.call_soon(self._run, then, record)

    @staticmethod
    def _run(then: Then, record: TaskRecord) -> None:
        try:
            then(record)
        except Exception:
            logger.exception("what follows task %s could not be started", record.id)


_followers: weakref.WeakKeyDictionary[Runner, _Followers] = weakref.WeakKeyDictionary()


def _after(runner: Runner, task_id: str, then: Then) -> None:
    """Call `then(record)` once the task has ended (on the loop's thread only)."""
    followers = _followers.get(runner)
    if followers is None:
        followers = _followers[runner] = _Followers(runner)
    followers.after(task_id, then)


def _links(chain: Iterable[Any]) -> list[Link]:
    """A chain's calls as (func, args, kwargs), checked now: `func`, `(func,)`, `(func, args)`
    or `(func, args, kwargs)`, `func` a callable or a dotted path that imports."""
    links: list[Link] = []
    for item in chain:
        parts = item if isinstance(item, tuple) else (item,)
        if not 1 <= len(parts) <= 3:
            raise TaskSpecError(f"a chain's call is (func, args, kwargs), not {item!r}")
        func = parts[0]
        args = parts[1] if len(parts) > 1 else ()
        kwargs = parts[2] if len(parts) > 2 else {}
        if isinstance(func, str):
            import_callable(func)
        elif not callable(func):
            raise TaskSpecError(f"a chain's function must be callable, not {func!r}")
        if not isinstance(args, tuple | list) or not isinstance(kwargs, dict):
            raise TaskSpecError(f"a chain's call is (func, args tuple, kwargs dict): {item!r}")
        links.append((func, tuple(args), dict(kwargs)))
    return links


def async_chain(
    chain: Sequence[Any],
    group: str | None = None,
    cached: Any = False,
    sync: bool = False,
    broker: Any = None,
) -> str:
    """Queue the first call of `chain`; each next one is queued when the one before has ended.
    Returns the chain's group (a new id unless `group` is given). The list is not changed."""
    from taskcast.tasks import async_task

    links = _links(chain)
    if not links:
        raise TaskSpecError("async_chain needs at least one call")
    group = group or uuid.uuid4().hex
    func, args, kwargs = links[0]
    options = {"chain": links[1:], "group": group, "cached": cached, "sync": sync}
    if broker is not None:
        options["broker"] = broker
    async_task(func, *args, **{**kwargs, **options})
    return group


def follow_chain(runner: Runner, task_id: str, spec: TaskSpec) -> None:
    """Queue the rest of the chain of `spec` once task `task_id` has ended."""
    rest, group = list(spec.chain), spec.group

    def next_call(record: TaskRecord) -> None:
        async_chain(rest, group=group)

    _after(runner, task_id, next_call)


class Chain:
    """Django Q's `Chain`: calls added with `append`, run one after the other by `run`."""

    def __init__(
        self,
        chain: list[Any] | None = None,
        group: str | None = None,
        cached: Any = False,
        sync: bool = False,
        broker: Any = None,
    ) -> None:
        self.chain = chain or []
        self.group = group or ""
        self.cached = cached
        self.sync = sync
        self.broker = broker
        self.started = False

    def append(self, func: Any, *args: Any, **kwargs: Any) -> int:
        """Add a call (as `async_task` takes it); after `run`, forget the results so far."""
        self.chain.append((func, args, kwargs))
        if self.started:
            delete_group(self.group)
            self.started = False
        return self.length()

    def run(self) -> str:
        """Queue the chain; returns its group."""
        self.group = async_chain(self.chain[:], self.group, self.cached, self.sync, self.broker)
        self.started = True
        return self.group

    def result(self, wait: int = 0) -> list[Any] | None:
        """The results once every call has ended (waiting up to `wait` ms), newest first."""
        if not self.started:
            return None
        return result_group(self.group, wait=wait, count=self.length())

    def fetch(self, failures: bool = True, wait: int = 0) -> list[TaskRecord] | None:
        """The records once every call has ended, as `result`."""
        if not self.started:
            return None
        return fetch_group(self.group, failures=failures, wait=wait, count=self.length())

    def current(self) -> int | None:
        """How many calls have ended: the index of the one running now."""
        return count_group(self.group) if self.started else None

    def length(self) -> int:
        return len(self.chain)


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
                _after(runner, task_id, collect)

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
