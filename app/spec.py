"""What to run: a task call checked and resolved before it is queued (`TaskSpec`).

`async_task`'s arguments are split into options and the function's own arguments (`options.py`),
the dotted path is imported, the kind of execution chosen, and a process task's call pickled, so
that every mistake is an error at `async_task` time rather than a failed task later. Those
pickles are the only ones of the run's arguments: the worker receives them, and the store saves
them at each change of the run's record.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

from taskcast.errors import TaskSpecError
from taskcast.functions import dotted_path, import_callable, resolve
from taskcast.names import human_name
from taskcast.options import DEFAULTS_ATTRIBUTE as DEFAULTS_ATTRIBUTE
from taskcast.options import EXTRA_OPTIONS as EXTRA_OPTIONS
from taskcast.options import IGNORED_OPTIONS as IGNORED_OPTIONS
from taskcast.options import ITER_OPTIONS as ITER_OPTIONS
from taskcast.options import KEYWORDS_TO_TASK as KEYWORDS_TO_TASK
from taskcast.options import OPTION_NAMES as OPTION_NAMES
from taskcast.options import seconds, split_options
from taskcast.publish import publish_group, stream_id_for
from taskcast.records import TaskRecord
from taskcast.store.rows import PROTOCOL, PickledArgs

Kind = Literal["async", "thread", "process"]

logger = logging.getLogger(__name__)


def task_options(
    *,
    executor: Kind | None = None,
    timeout: float | None = None,
    max_attempts: int | None = None,
    retry_delay: float | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a task function default options, e.g. `@task_options(executor="thread")`."""
    given = {
        "executor": executor,
        "timeout": timeout,
        "max_attempts": max_attempts,
        "retry_delay": retry_delay,
    }
    defaults = {name: value for name, value in given.items() if value is not None}

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, DEFAULTS_ATTRIBUTE, defaults)
        return func

    return decorator


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessCall:
    """A process task's call as its worker receives it: the function's reference (a dotted path,
    or the function itself, which pickles by name) and the arguments, each pickled once when the
    call is checked. The executor then only copies these bytes to the worker."""

    reference: bytes
    args: bytes
    kwargs: bytes

    @property
    def arguments(self) -> PickledArgs:
        """The same pickles of the arguments, for the store's saves of the run's record."""
        return PickledArgs(self.args, self.kwargs)


# Not frozen, though nothing changes a spec once it is checked: a frozen dataclass's __init__
# sets each of its 19 fields through object.__setattr__, which made up a tenth of the cost of
# an async_task call. Options are applied with dataclasses.replace, never in place.
@dataclasses.dataclass(slots=True)
class TaskSpec:
    """A checked task call: the function, its arguments and the options that govern the run."""

    func: Callable[..., Any]
    func_path: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    kind: Kind
    group: str | None = None
    stream_id: str | None = None
    task_name: str | None = None
    hook: Callable[..., Any] | None = None
    #: the hook as the record names it: its dotted path
    hook_path: str | None = None
    timeout: float | None = None
    save: bool = True
    sync: bool = False
    max_attempts: int = 1
    retry_delay: float = 0.0
    #: a process task's call, pickled once when it is checked (`process_call`); None otherwise
    call: ProcessCall | None = None
    schedule: str | None = None
    started_by: str | None = None
    #: Django Q's `chain` option: the calls to queue, one after the other, once this one ends
    chain: tuple[Any, ...] = ()

    def new_record(self, task_id: str, **fields: Any) -> TaskRecord:
        """The first record of a run of this call, with `fields` (status, times...) set."""
        return TaskRecord(
            id=task_id,
            name=self.task_name or human_name(task_id),
            func=self.func_path,
            args=self.args,
            kwargs=self.kwargs,
            group=self.group,
            stream_id=self.stream_id,
            kind=self.kind,
            schedule=self.schedule,
            started_by=self.started_by,
            hook=self.hook_path,
            **fields,
        )


def process_call(
    reference: str | Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    func_path: str,
) -> ProcessCall:
    """The call a worker process receives, pickled: the check that a process task's function and
    arguments pickle is this pickling, and these bytes travel to the worker as they are."""
    try:
        return ProcessCall(
            pickle.dumps(reference, protocol=PROTOCOL),
            pickle.dumps(args, protocol=PROTOCOL),
            pickle.dumps(kwargs, protocol=PROTOCOL),
        )
    except Exception as exc:
        raise TaskSpecError(
            f"a process task's function and arguments must pickle, and {func_path}'s do not "
            f"({exc}); pass plain data, or run it with executor='thread'"
        ) from exc


_warned: set[str] = set()


def warn_ignored(options: Mapping[str, Any]) -> None:
    """Log once per option and process that a Django Q infrastructure option means nothing
    (`async_task`'s and `schedule`'s `broker`, `cluster`, `ack_failure`)."""
    for name in sorted(IGNORED_OPTIONS & set(options) - _warned):
        _warned.add(name)
        logger.warning(
            "async_task: the option %r chooses Django Q's infrastructure, which Taskcast does "
            "not have; it is ignored (said once per process)",
            name,
        )


def forget_warnings() -> None:
    """Warn again about options already warned about (for tests)."""
    _warned.clear()


def build_spec(
    func: str | Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    q_options: Mapping[str, Any] | None = None,
    default_timeout: float | None = None,
    *,
    keyword_options: bool = True,
) -> TaskSpec:
    """Check and resolve one `async_task` call (`keyword_options`: see `options.split_options`)."""
    if q_options is None and (not keyword_options or OPTION_NAMES.isdisjoint(kwargs)):
        # The common call has no options: nothing to split out of the keywords or check.
        options: dict[str, Any] = {}
        kwargs = dict(kwargs)
    else:
        options, kwargs = split_options(dict(kwargs), q_options, keyword_options)
        refused = ITER_OPTIONS & set(options)
        if refused:
            raise TaskSpecError(
                f"{', '.join(sorted(refused))}: Django Q's own bookkeeping of async_iter; "
                "call taskcast.tasks.async_iter (or Iter) instead"
            )
        warn_ignored(options)
    target, func_path, is_async = resolve(func)
    defaults = getattr(target, DEFAULTS_ATTRIBUTE, None)
    if defaults:
        options = {**defaults, **options}
    executor = options.get("executor")
    if is_async:
        if executor not in (None, "async"):
            raise TaskSpecError(f"{func_path} is an async function: it runs on the event loop")
        kind: Kind = "async"
    elif executor in (None, "process"):
        kind = "process"
    elif executor == "thread":
        kind = "thread"
    else:
        raise TaskSpecError(f"executor must be 'process' or 'thread', not {executor!r}")

    group = publish_group(target)
    stream_id = stream_id_for(group, kwargs.get("task_publish_id")) if group else None
    call = None
    if kind == "process":
        reference: str | Callable[..., Any] = func if isinstance(func, str) else target
        call = process_call(reference, tuple(args), kwargs, func_path)
    spec = TaskSpec(
        target,
        func_path,
        tuple(args),
        kwargs,
        kind,
        group,
        stream_id,
        timeout=default_timeout,
        call=call,
    )
    return _with_options(spec, options) if options else spec


def _with_options(spec: TaskSpec, options: dict[str, Any]) -> TaskSpec:
    """`spec` with the options of its call checked and applied."""
    hook = options.get("hook")
    hook_path = hook if isinstance(hook, str) else None
    if isinstance(hook, str):
        hook = import_callable(hook)
    elif hook is not None and not callable(hook):
        raise TaskSpecError(f"hook must be a function or a dotted path, not {hook!r}")
    elif hook is not None:
        hook_path = dotted_path(hook)
    chain = options.get("chain") or ()
    if not isinstance(chain, list | tuple):
        raise TaskSpecError(f"chain must be a list of calls, not {type(chain).__name__}")
    max_attempts = options.get("max_attempts", 1)
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise TaskSpecError(
            f"max_attempts must be a whole number of at least 1, not {max_attempts!r}"
        )
    retry_delay = seconds("retry_delay", options.get("retry_delay"), zero_allowed=True) or 0.0
    timeout = seconds("timeout", options.get("timeout"))
    task_name = options.get("task_name")
    if task_name is not None and not isinstance(task_name, str):
        raise TaskSpecError(f"task_name must be a str, not {type(task_name).__name__}")
    option_group = options.get("group")
    if option_group is not None and not isinstance(option_group, str):
        raise TaskSpecError(f"group must be a str, not {type(option_group).__name__}")
    if chain and not option_group:  # a chain's calls are told apart by their group
        option_group = uuid.uuid4().hex
    return dataclasses.replace(
        spec,
        group=option_group or spec.group,
        task_name=task_name,
        hook=hook,
        hook_path=hook_path,
        timeout=timeout if timeout is not None else spec.timeout,
        save=bool(options.get("save", True)),
        sync=bool(options.get("sync", False)),
        max_attempts=max_attempts,
        retry_delay=retry_delay,
        chain=tuple(chain),
    )
