"""The registry: which task functions may be started from outside, and how to call them.

Only functions the server was told about can be started over HTTP: those marked `@register` and
every `@publish` function of the task modules it loaded. A name from a request is looked up
here and never imported. Arguments from a request are bound to the function's signature before
the task starts, so a mismatch is an error that names the parameter.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any, TypeVar, overload

from taskcast import docstrings
from taskcast.errors import TaskSpecError
from taskcast.functions import dotted_path
from taskcast.publish import publish_group

#: attribute `@register` sets: the name to register the function under
REGISTER_ATTRIBUTE = "__taskcast_register__"
#: parameters the request never provides: the publisher, and the stream's id (given apart)
RESERVED = frozenset({"cproxy", "task_publish_id"})
MAX_ARGUMENTS = 100
MAX_STRING = 64 * 1024


class ArgumentError(TaskSpecError):
    """Arguments from a request do not fit the task's signature."""


F = TypeVar("F", bound=Callable[..., Any])


@overload
def register(func: F, *, name: str | None = None) -> F: ...
@overload
def register(func: None = None, *, name: str | None = None) -> Callable[[F], F]: ...
def register(func: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark a task function as startable from the console and the HTTP API."""

    def mark(target: F) -> F:
        setattr(target, REGISTER_ATTRIBUTE, name or dotted_path(target))
        return target

    return mark(func) if func is not None else mark


@dataclasses.dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of a registered task, as a form or an API client sees it."""

    name: str
    required: bool
    default: Any = None
    annotation: str | None = None
    help: str = ""  # what the docstring says about it (Google, numpy or Sphinx style)

    @property
    def type(self) -> type | None:
        """The simple type the value must have (int, float, bool, str), if the task says so."""
        return {"int": int, "float": float, "bool": bool, "str": str}.get(self.annotation or "")

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "required": self.required,
            "default": jsonable(self.default) if not self.required else None,
            "type": self.annotation,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class RegisteredTask:
    """A task that may be started from outside: its name, its doc line, its parameters."""

    name: str
    func: Callable[..., Any]
    summary: str
    parameters: tuple[Parameter, ...]
    accepts_more: bool  # the function takes **kwargs: other keyword arguments are accepted too
    group: str | None  # its @publish group, None for a task without a stream
    description: str = ""  # the docstring's prose after the summary, for the start form

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "parameters": [parameter.as_json() for parameter in self.parameters],
            "accepts_more": self.accepts_more,
            "publish_group": self.group,
        }


def jsonable(value: Any) -> Any:
    """The value itself when JSON can carry it, else its repr."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _annotation_name(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", None) or str(annotation)


def describe(func: Callable[..., Any], name: str) -> RegisteredTask:
    signature = inspect.signature(func)
    doc = docstrings.parse(inspect.getdoc(func))
    parameters = []
    accepts_more = False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_more = True
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL or parameter.name in RESERVED:
            continue
        else:
            required = parameter.default is inspect.Parameter.empty
            parameters.append(
                Parameter(
                    parameter.name,
                    required,
                    None if required else parameter.default,
                    _annotation_name(parameter.annotation),
                    doc.params.get(parameter.name, ""),
                )
            )
    return RegisteredTask(
        name,
        func,
        doc.summary,
        tuple(parameters),
        accepts_more,
        publish_group(func),
        doc.description,
    )


def _check_value(parameter: Parameter | None, name: str, value: Any) -> None:
    if isinstance(value, str) and len(value) > MAX_STRING:
        raise ArgumentError(f"argument {name!r} is longer than {MAX_STRING} characters")
    expected = parameter.type if parameter is not None else None
    if expected is None or value is None:
        return
    fits = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        fits = True
    if not fits:
        raise ArgumentError(
            f"argument {name!r} must be {expected.__name__}, not {type(value).__name__}"
        )


class Registry:
    """The registered tasks of one app, by name."""

    def __init__(self) -> None:
        self._tasks: dict[str, RegisteredTask] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[RegisteredTask]:
        return iter(sorted(self._tasks.values(), key=lambda task: task.name))

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def get(self, name: str) -> RegisteredTask | None:
        return self._tasks.get(name)

    def add(self, func: Callable[..., Any], name: str | None = None) -> RegisteredTask:
        if not callable(func):
            raise TypeError(f"only functions can be registered, not {func!r}")
        entry = describe(func, name or getattr(func, REGISTER_ATTRIBUTE, None) or dotted_path(func))
        self._tasks[entry.name] = entry
        return entry

    def add_module(self, module: ModuleType) -> list[RegisteredTask]:
        """Register the module's @register functions and every @publish function it defines."""
        added = []
        for value in list(vars(module).values()):
            if not callable(value) or getattr(value, "__module__", None) != module.__name__:
                continue
            if hasattr(value, REGISTER_ATTRIBUTE) or publish_group(value) is not None:
                added.append(self.add(value, _module_name(module, value)))
        return added

    def add_modules(self, names: tuple[str, ...]) -> None:
        """Import the task modules by name and add their startable functions."""
        for name in names:
            try:
                module = importlib.import_module(name)
            except ImportError as exc:
                raise RuntimeError(f"cannot import task module {name!r}: {exc}") from exc
            self.add_module(module)

    def bind(
        self, name: str, arguments: Mapping[str, Any]
    ) -> tuple[RegisteredTask, dict[str, Any]]:
        """Check request arguments against the task's signature; the keywords to call it with."""
        task = self._tasks.get(name)
        if task is None:
            raise LookupError(f"no registered task named {name!r}")
        if len(arguments) > MAX_ARGUMENTS:
            raise ArgumentError(f"at most {MAX_ARGUMENTS} arguments are accepted")
        known = {parameter.name: parameter for parameter in task.parameters}
        for key, value in arguments.items():
            if key in RESERVED:
                raise ArgumentError(f"argument {key!r} cannot be given: Taskcast provides it")
            if key not in known and not task.accepts_more:
                raise ArgumentError(f"{task.name} has no parameter {key!r}")
            _check_value(known.get(key), key, value)
        missing = [p.name for p in task.parameters if p.required and p.name not in arguments]
        if missing:
            raise ArgumentError(f"missing required argument {missing[0]!r} of {task.name}")
        return task, dict(arguments)


def _module_name(module: ModuleType, func: Callable[..., Any]) -> str:
    marked = getattr(func, REGISTER_ATTRIBUTE, None)
    return marked if isinstance(marked, str) else f"{module.__name__}.{func.__name__}"
