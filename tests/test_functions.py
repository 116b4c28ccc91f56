"""Tests of taskcast.functions: task functions found by dotted path, and remembered safely."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from taskcast import functions
from taskcast.errors import TaskSpecError
from taskcast.functions import resolve
from taskcast.spec import build_spec
from tests.support import sample_tasks


@pytest.fixture(autouse=True)
def fresh_memory() -> Iterator[None]:
    functions.forget_resolved()
    yield
    functions.forget_resolved()


@pytest.fixture
def module() -> Iterator[types.ModuleType]:
    """A module `tests_made_module` holding `work`, an async function."""
    made = types.ModuleType("tests_made_module")

    async def work() -> str:
        return "first"

    made.work = work  # type: ignore[attr-defined]
    sys.modules[made.__name__] = made
    yield made
    sys.modules.pop(made.__name__, None)


def test_a_path_gives_its_function_its_path_and_whether_it_is_async() -> None:
    assert resolve("tests.support.sample_tasks.add") == (
        sample_tasks.add,
        "tests.support.sample_tasks.add",
        False,
    )
    assert resolve("tests.support.sample_tasks.async_identity").is_async


def test_a_function_given_itself_is_named_by_its_module_and_qualified_name() -> None:
    assert resolve(sample_tasks.add) == (sample_tasks.add, "tests.support.sample_tasks.add", False)


def test_a_function_replaced_in_its_module_is_found_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve("tests.support.sample_tasks.add").func is sample_tasks.add

    def other(a: int, b: int) -> int:
        return a - b

    monkeypatch.setattr(sample_tasks, "add", other)
    assert resolve("tests.support.sample_tasks.add").func is other
    assert build_spec("tests.support.sample_tasks.add", (1, 2), {}).func is other


def test_a_module_loaded_again_is_read_again(module: types.ModuleType) -> None:
    first = resolve("tests_made_module.work")
    assert first.func is module.work and first.is_async

    again = types.ModuleType(module.__name__)

    def work() -> str:
        return "second"

    again.work = work  # type: ignore[attr-defined]
    sys.modules[again.__name__] = again
    second = resolve("tests_made_module.work")
    assert second.func is work and not second.is_async


def test_a_function_removed_from_its_module_is_an_error_again(module: types.ModuleType) -> None:
    resolve("tests_made_module.work")
    del module.work
    with pytest.raises(TaskSpecError, match="has no function 'work'"):
        resolve("tests_made_module.work")


def test_the_paths_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(functions, "RESOLVED_KEPT", 3)
    names = ["add", "async_identity", "fast_clock", "broken_initializer", "hanging_initializer"]
    for name in names:
        assert resolve(f"tests.support.sample_tasks.{name}").func is getattr(sample_tasks, name)
        assert len(functions._resolved) <= 3


@pytest.mark.parametrize(
    ("func", "kwargs"),
    [
        ("tests.support.sample_tasks.add", {"a": 1, "b": 2}),
        ("tests.support.sample_tasks.async_identity", {"value": 1}),
        ("tests.support.sample_tasks.process_events", {"task_publish_id": "p1", "n": 3}),
        ("tests.support.sample_tasks.async_events", {"task_publish_id": "p2"}),
        (sample_tasks.add, {}),
    ],
)
def test_a_call_without_options_checks_out_as_one_with_empty_options(
    func: Any, kwargs: dict[str, Any]
) -> None:
    """The call with no options skips the splitting of options: it must come to the same spec."""
    plain = build_spec(func, (), kwargs, None, 7.0)
    assert plain == build_spec(func, (), kwargs, {}, 7.0)
    assert plain == build_spec(func, (), kwargs, None, 7.0, keyword_options=False)
    assert plain.timeout == 7.0 and plain.kwargs == kwargs and plain.kwargs is not kwargs
