"""Task functions named by dotted path: the one importer, and what `async_task` learns of a function.

`async_task`, hooks, schedules and the worker processes (a task's function, the worker
initializer) all resolve names with `import_callable`, so every mistake reads the same and this
module stays importable without aiohttp. `resolve` is `async_task`'s way in: it remembers what
it found for each path, since a view may start thousands of tasks of one function in a turn of
the loop, and checks on each call that the module still holds that function.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from taskcast.errors import TaskSpecError

__all__ = ["Resolved", "dotted_path", "forget_resolved", "import_callable", "resolve"]

#: paths remembered by `resolve`; past this many the memory starts again (a server names few)
RESOLVED_KEPT = 1024


class Resolved(NamedTuple):
    """A task function and what the checks of a call need to know of it."""

    func: Callable[..., Any]
    #: the dotted path the record names it by
    path: str
    #: `async def`: it runs on the event loop
    is_async: bool


def import_callable(path: str) -> Callable[..., Any]:
    """Import `package.module.function`, with an error that says what was wrong."""
    module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise TaskSpecError(f"{path!r} is not a dotted path like 'tasks.long_running_process'")
    module = sys.modules.get(module_name)
    # A module already imported is used as it is (import_module's own first step, without its
    # cost on async_task's path); one still being imported goes through the import lock.
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise TaskSpecError(
                f"cannot import module {module_name!r} for task {path!r}: {exc}"
            ) from exc
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise TaskSpecError(f"module {module_name!r} has no function {attribute!r}") from None
    if not callable(target):
        raise TaskSpecError(f"{path!r} is a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]


def dotted_path(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or "?"
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    return f"{module}.{name}"


#: path -> (the module's name, the module it was found in, the attribute's name, what was found)
_resolved: dict[str, tuple[str, ModuleType, str, Resolved]] = {}


def resolve(func: str | Callable[..., Any]) -> Resolved:
    """The function a task call names (a dotted path, or the function itself)."""
    if not isinstance(func, str):
        if not callable(func):
            raise TaskSpecError(f"a task is a function or a dotted path, not {type(func).__name__}")
        return Resolved(func, dotted_path(func), inspect.iscoroutinefunction(func))
    known = _resolved.get(func)
    if known is not None:
        module_name, module, attribute, resolved = known
        # Still what the module holds (not reloaded, not patched): the import's answer stands.
        if sys.modules.get(module_name) is module and (
            getattr(module, attribute, None) is resolved.func
        ):
            return resolved
    target = import_callable(func)
    resolved = Resolved(target, func, inspect.iscoroutinefunction(target))
    module_name, _, attribute = func.rpartition(".")
    found = sys.modules.get(module_name)
    if found is not None:
        if len(_resolved) >= RESOLVED_KEPT:
            _resolved.clear()
        _resolved[func] = (module_name, found, attribute, resolved)
    return resolved


def forget_resolved() -> None:
    """Resolve every path again from the next call on (for tests)."""
    _resolved.clear()
