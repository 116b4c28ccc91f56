"""Django Q's chains: `async_chain`/`Chain`.

A chain is calls run one after the other in one group: each is queued when the one before it
has ended, whether it succeeded or not (Django Q queues the next one when it saves a result).
Django Q's iterables (`async_iter`/`Iter`) live in `taskcast.iterables` and are importable from
here too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from taskcast.errors import TaskSpecError
from taskcast.followers import after
from taskcast.functions import import_callable
from taskcast.groups import count_group, delete_group, fetch_group, result_group
from taskcast.iterables import Iter, async_iter
from taskcast.records import TaskRecord
from taskcast.runtime.runner import Runner
from taskcast.spec import TaskSpec

__all__ = ["Chain", "Iter", "async_chain", "async_iter", "follow_chain"]

Link = tuple[Any, tuple[Any, ...], dict[str, Any]]


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

    after(runner, task_id, next_call)


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
