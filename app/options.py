"""The options of a task call: Django Q's (`hook`, `group`, `timeout`, `save`...) and Taskcast's
own (`executor`, `max_attempts`, `retry_delay`), which keywords of a call they are, and the check
of a number of seconds.

`taskcast.spec.build_spec` splits each call here, then checks the values. Process workers load
this module with spec.py, so it stands on nothing but the errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskcast.errors import TaskSpecError

#: Django Q's options: taken out of the keywords unless `q_options` is given
OPTION_NAMES = frozenset(
    {
        "hook",
        "group",
        "timeout",
        "save",
        "sync",
        "task_name",
        "cached",
        "ack_failure",
        "chain",
        "broker",
        "cluster",
        "iter_count",
        "iter_cached",
    }
)
#: Django Q options that only choose its infrastructure: accepted, with one warning each
IGNORED_OPTIONS = frozenset({"broker", "cluster", "ack_failure"})
#: Django Q's own bookkeeping for `async_iter`, refused: `async_iter` is the call to use
ITER_OPTIONS = frozenset({"iter_count", "iter_cached"})
#: Taskcast's own options, given in `q_options` or with the `task_options` decorator
EXTRA_OPTIONS = frozenset({"executor", "max_attempts", "retry_delay"})
#: a `q_options` entry that sends every keyword to the task, none taken as a Django Q option
#: (Pytigon's `add_task` calls its tasks that way)
KEYWORDS_TO_TASK = "keywords_to_task"

#: attribute `task_options` sets on a function: its default options
DEFAULTS_ATTRIBUTE = "__taskcast_options__"


def split_options(
    kwargs: dict[str, Any], q_options: Mapping[str, Any] | None, keyword_options: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Django Q's rule: an option named in `q_options` comes from it, and a keyword of the same
    name goes to the function; any other option keyword is still an option. `task_name` is
    the exception: the keyword comes first. With `keyword_options` False (the HTTP API's
    calls) or `q_options={"keywords_to_task": True}`, every keyword goes to the function."""
    if q_options is not None and not isinstance(q_options, Mapping):
        raise TaskSpecError(f"q_options must be a dict, not {type(q_options).__name__}")
    given = dict(q_options or {})
    if given.pop(KEYWORDS_TO_TASK, False):
        keyword_options = False
    unknown = set(given) - OPTION_NAMES - EXTRA_OPTIONS
    if unknown:
        raise TaskSpecError(f"unknown q_options: {', '.join(sorted(unknown))}")
    options = {name: value for name, value in given.items() if name in EXTRA_OPTIONS}
    if not keyword_options:
        return {**options, **given}, kwargs
    task_name = kwargs.pop("task_name", None) or given.get("task_name")
    if task_name is not None:
        options["task_name"] = task_name
    for name in OPTION_NAMES - {"task_name"}:
        if name in given:
            options[name] = given[name]
        elif name in kwargs:
            options[name] = kwargs.pop(name)
    return options, kwargs


def seconds(name: str, value: Any, *, zero_allowed: bool = False) -> float | None:
    """`value` as seconds (None stays None), or TaskSpecError naming the option `name`."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < 0
        or (value == 0 and not zero_allowed)
    ):
        kind = "a number of seconds >= 0" if zero_allowed else "a positive number of seconds"
        raise TaskSpecError(f"{name} must be {kind}, not {value!r}")
    return float(value)
