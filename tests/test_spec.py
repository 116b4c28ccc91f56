"""Tests of taskcast.spec: how an `async_task` call is split, resolved, checked and classified."""

from __future__ import annotations

import pickle
import threading
from typing import Any, SupportsIndex

import pytest

from taskcast.errors import TaskSpecError
from taskcast.publish import CommunicationBasePublisher, publish
from taskcast.records import TaskStatus
from taskcast.runtime.runner import Runner
from taskcast.spec import build_spec, task_options
from taskcast.store.rows import PickledArgs
from tests.support import sample_tasks


def takes_anything(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


async def async_takes_anything(*args: Any, **kwargs: Any) -> None:
    return None


@task_options(timeout=4, max_attempts=3, retry_delay=0.5)
def with_defaults() -> None:
    return None


@publish("proc")
def published(cproxy: CommunicationBasePublisher | None = None, **kwargs: Any) -> None:
    return None


def on_done(task: Any) -> None:
    return None


NOT_CALLABLE = 42


def spec_error(func: Any, *args: Any, q_options: Any = None, **kwargs: Any) -> str:
    """The message of the TaskSpecError that build_spec raises for this call."""
    with pytest.raises(TaskSpecError) as caught:
        build_spec(func, args, kwargs, q_options)
    return str(caught.value)


# -- splitting options from the function's keywords ------------------------------------------------


def test_django_q_options_are_taken_out_and_other_keywords_reach_the_function() -> None:
    kwargs: dict[str, Any] = {
        "value": 1,
        "task_publish_id": 3,
        "executor": "mine",
        "max_attempts": "also mine",
        "hook": "tests.test_spec.on_done",
        "group": "reports",
        "timeout": 5,
        "save": False,
        "sync": True,
        "task_name": "nightly",
    }
    spec = build_spec("tests.test_spec.takes_anything", (1, 2), kwargs)
    assert spec.kwargs == {
        "value": 1,
        "task_publish_id": 3,
        "executor": "mine",
        "max_attempts": "also mine",
    }
    assert spec.args == (1, 2)
    assert spec.hook is on_done
    assert spec.group == "reports"
    assert spec.timeout == 5.0
    assert spec.save is False and spec.sync is True
    assert spec.task_name == "nightly"
    assert spec.kind == "process"  # "executor" was the function's keyword, not an option
    assert spec.max_attempts == 1
    # The caller's dict is left as it was.
    assert kwargs["group"] == "reports" and len(kwargs) == 10


def test_without_options_the_defaults_apply() -> None:
    spec = build_spec(sample_tasks.add, (1, 2), {})
    assert (spec.group, spec.task_name, spec.hook, spec.timeout) == (None, None, None, None)
    assert (spec.save, spec.sync, spec.max_attempts, spec.retry_delay) == (True, False, 1, 0.0)
    assert spec.func is sample_tasks.add
    assert spec.func_path == "tests.support.sample_tasks.add"


def test_q_options_names_the_options_whose_keywords_go_to_the_function() -> None:
    spec = build_spec(
        takes_anything,
        (),
        {"group": "mine", "timeout": "mine too", "hook": None, "value": 1},
        q_options={"group": "reports", "timeout": 3, "task_name": "n", "max_attempts": 2},
    )
    # Django Q: a keyword named like an option in q_options goes to the function; `hook`,
    # not in q_options, is still an option.
    assert spec.kwargs == {"group": "mine", "timeout": "mine too", "value": 1}
    assert spec.group == "reports"
    assert spec.timeout == 3.0
    assert spec.task_name == "n"
    assert spec.max_attempts == 2
    assert spec.hook is None


def test_keyword_options_false_sends_every_keyword_to_the_function() -> None:
    kwargs = {"group": "mine", "hook": None, "value": 1}
    spec = build_spec(takes_anything, (), kwargs, keyword_options=False)
    assert spec.kwargs == kwargs and spec.group is None


@pytest.mark.parametrize("option", ["iter_count", "iter_cached"])
def test_async_iter_bookkeeping_options_are_refused(option: str) -> None:
    assert "async_iter" in spec_error(sample_tasks.add, 1, 2, **{option: True})
    assert "async_iter" in spec_error(sample_tasks.add, 1, 2, q_options={option: True})


@pytest.mark.parametrize("option", ["cached", "ack_failure", "broker", "cluster"])
def test_infrastructure_options_are_accepted(option: str) -> None:
    assert build_spec(sample_tasks.add, (1, 2), {option: True}).kwargs == {}
    assert build_spec(sample_tasks.add, (1, 2), {}, q_options={option: True}).kwargs == {}


def test_unknown_q_options_key_is_refused() -> None:
    message = spec_error(sample_tasks.add, 1, 2, q_options={"retries": 3, "priority": 1})
    assert "retries" in message and "priority" in message


def test_q_options_must_be_a_mapping() -> None:
    assert "q_options" in spec_error(sample_tasks.add, 1, 2, q_options=[("timeout", 1)])


# -- resolving the function ------------------------------------------------------------------------


def test_dotted_path_is_imported() -> None:
    spec = build_spec("tests.support.sample_tasks.add", (1, 2), {})
    assert spec.func is sample_tasks.add
    assert spec.func_path == "tests.support.sample_tasks.add"


def test_dotted_path_to_a_missing_module_is_refused() -> None:
    assert "tests.no_such_module.work" in spec_error("tests.no_such_module.work")


def test_dotted_path_to_a_missing_attribute_is_refused() -> None:
    message = spec_error("tests.support.sample_tasks.no_such_function")
    assert "tests.support.sample_tasks" in message and "no_such_function" in message


def test_dotted_path_to_something_not_callable_is_refused() -> None:
    message = spec_error("tests.test_spec.NOT_CALLABLE")
    assert "tests.test_spec.NOT_CALLABLE" in message and "int" in message


@pytest.mark.parametrize("path", ["add", "", ".add", "tests."])
def test_a_string_that_is_not_a_dotted_path_is_refused(path: str) -> None:
    assert repr(path) in spec_error(path)


@pytest.mark.parametrize("func", [42, None, ["tests.support.sample_tasks.add"]])
def test_a_task_that_is_neither_a_function_nor_a_path_is_refused(func: Any) -> None:
    assert type(func).__name__ in spec_error(func)


def test_hook_given_as_a_dotted_path_is_imported() -> None:
    spec = build_spec(sample_tasks.add, (1, 2), {"hook": "tests.test_spec.on_done"})
    assert spec.hook is on_done
    assert "tests.nowhere.hook" in spec_error(sample_tasks.add, 1, 2, hook="tests.nowhere.hook")
    assert "hook" in spec_error(sample_tasks.add, 1, 2, hook=5)


# -- kind of execution -----------------------------------------------------------------------------


def test_async_def_runs_as_async_and_plain_def_in_a_process() -> None:
    assert build_spec(sample_tasks.async_identity, (1,), {}).kind == "async"
    assert build_spec("tests.support.sample_tasks.async_events", (), {}).kind == "async"
    assert build_spec(sample_tasks.identity, (1,), {}).kind == "process"
    assert build_spec("tests.support.sample_tasks.process_events", (), {}).kind == "process"


def test_executor_thread_from_q_options_or_task_options() -> None:
    assert build_spec(sample_tasks.identity, (1,), {}, {"executor": "thread"}).kind == "thread"
    assert build_spec(sample_tasks.thread_sleep_for, (0,), {}).kind == "thread"
    # @task_options under @publish still counts.
    assert build_spec(sample_tasks.thread_events, (), {}).kind == "thread"
    # The call's options override the function's defaults.
    assert (
        build_spec(sample_tasks.thread_sleep_for, (0,), {}, {"executor": "process"}).kind
        == "process"
    )


def test_async_function_with_a_process_or_thread_executor_is_refused() -> None:
    for executor in ("process", "thread"):
        message = spec_error(sample_tasks.async_identity, 1, q_options={"executor": executor})
        assert "tests.support.sample_tasks.async_identity" in message and "async" in message
    assert build_spec(async_takes_anything, (), {}, {"executor": "async"}).kind == "async"


def test_unknown_executor_is_refused() -> None:
    assert "'fork'" in spec_error(sample_tasks.identity, 1, q_options={"executor": "fork"})


# -- pickling of process tasks ---------------------------------------------------------------------


def test_process_task_call_holds_the_function_and_arguments_pickled() -> None:
    spec = build_spec("tests.support.sample_tasks.add", (1, 2), {"task_publish_id": 4})
    assert spec.call is not None
    assert pickle.loads(spec.call.reference) == "tests.support.sample_tasks.add"
    assert pickle.loads(spec.call.args) == (1, 2)
    assert pickle.loads(spec.call.kwargs) == {"task_publish_id": 4}
    assert spec.call.arguments == PickledArgs(spec.call.args, spec.call.kwargs)
    by_function = build_spec(sample_tasks.add, (1, 2), {})
    assert by_function.call is not None
    assert pickle.loads(by_function.call.reference) is sample_tasks.add
    assert pickle.loads(by_function.call.args) == (1, 2)
    assert pickle.loads(by_function.call.kwargs) == {}


class CountsPickles:
    """An argument that counts how often it is pickled (it arrives in the worker as a dict)."""

    pickled = 0

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        CountsPickles.pickled += 1
        return (dict, ())


@pytest.mark.parametrize("by_keyword", [False, True])
async def test_process_task_argument_is_pickled_once_in_a_whole_run(
    runner: Runner, by_keyword: bool
) -> None:
    CountsPickles.pickled = 0
    args, kwargs = ((), {"value": CountsPickles()}) if by_keyword else ((CountsPickles(),), {})
    spec = build_spec(sample_tasks.identity, args, kwargs)
    assert CountsPickles.pickled == 1  # the check
    record = await runner.wait(runner.submit(spec), 15)
    assert (record.status, record.result) == (TaskStatus.SUCCESS, {})
    await runner.store.aflush()
    stored = runner.store.get_task(record.id)
    assert stored is not None and stored.status is TaskStatus.SUCCESS
    assert (stored.args, stored.kwargs) == (((), {"value": {}}) if by_keyword else (({},), {}))
    # The check's bytes were what the worker received and what each save of the record stored
    # (queued, running, success).
    assert CountsPickles.pickled == 1


async def test_async_task_argument_is_pickled_once_at_its_first_save(runner: Runner) -> None:
    CountsPickles.pickled = 0
    spec = build_spec(sample_tasks.note_run, ("pickles",), {"value": CountsPickles()})
    assert CountsPickles.pickled == 0  # not checked: it never leaves the process
    task_id = runner.submit(spec)
    assert CountsPickles.pickled == 0  # the first save waits for a later turn of the loop
    record = await runner.wait(task_id, 15)
    assert record.status is TaskStatus.SUCCESS
    assert CountsPickles.pickled == 1  # the saves of the running and final records reused it


@pytest.mark.parametrize("value", [lambda: None, threading.Lock()])
def test_process_task_with_unpicklable_arguments_is_refused(value: Any) -> None:
    for args, kwargs in (((value,), {}), ((), {"value": value})):
        with pytest.raises(TaskSpecError) as caught:
            build_spec(sample_tasks.identity, args, kwargs)
        message = str(caught.value)
        assert "tests.support.sample_tasks.identity" in message
        assert "executor='thread'" in message


def test_process_task_that_is_a_lambda_or_a_local_function_is_refused() -> None:
    def local(value: int) -> int:
        return value

    for func in (lambda: None, local):
        message = spec_error(func)
        assert func.__qualname__ in message
        assert "executor='thread'" in message


def test_thread_and_async_tasks_accept_unpicklable_arguments() -> None:
    lock = threading.Lock()
    thread = build_spec(sample_tasks.thread_sleep_for, (lock,), {"also": lambda: None})
    assert thread.kind == "thread"
    assert thread.call is None
    assert thread.args[0] is lock
    local = build_spec(lambda: None, (), {}, {"executor": "thread"})
    assert local.kind == "thread"
    assert build_spec(sample_tasks.async_identity, (lock,), {}).args == (lock,)


# -- stream id and group ---------------------------------------------------------------------------


def test_stream_id_for_publish_functions_and_none_otherwise() -> None:
    by_path = build_spec("tests.support.sample_tasks.process_events", (), {"task_publish_id": 7})
    assert by_path.stream_id == "proc__7"
    assert build_spec(published, (), {}).stream_id == "proc"
    assert build_spec(published, (), {"task_publish_id": ""}).stream_id == "proc"
    threaded = build_spec(sample_tasks.thread_events, (), {"task_publish_id": "x"})
    assert threaded.stream_id == "thr__x"
    assert build_spec(sample_tasks.add, (1, 2), {"task_publish_id": 7}).stream_id is None


def test_group_is_the_publish_group_unless_an_option_overrides_it() -> None:
    assert build_spec(published, (), {"task_publish_id": 7}).group == "proc"
    spec = build_spec(published, (), {"task_publish_id": 7, "group": "reports"})
    assert spec.group == "reports"
    # The stream is still named by the decorator, which is what the wrapper uses when it runs.
    assert spec.stream_id == "proc__7"
    assert "group" in spec_error(published, group=5)


# -- timeout, attempts, retry delay ----------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 0, 0.0, True, False, "5"])
def test_invalid_timeout_is_refused(value: Any) -> None:
    assert "timeout" in spec_error(sample_tasks.add, 1, 2, timeout=value)
    assert "timeout" in spec_error(sample_tasks.add, 1, 2, q_options={"timeout": value})


@pytest.mark.parametrize("value", [0, -1, True, "2", 1.5])
def test_invalid_max_attempts_is_refused(value: Any) -> None:
    assert "max_attempts" in spec_error(sample_tasks.add, 1, 2, q_options={"max_attempts": value})


@pytest.mark.parametrize("value", [-1, -0.5, True, False, "5", ""])
def test_invalid_retry_delay_is_refused(value: Any) -> None:
    assert "retry_delay" in spec_error(sample_tasks.add, 1, 2, q_options={"retry_delay": value})


def test_valid_timeout_attempts_and_delay_are_kept() -> None:
    spec = build_spec(
        sample_tasks.add, (1, 2), {}, {"timeout": 2, "max_attempts": 4, "retry_delay": 1.5}
    )
    assert (spec.timeout, spec.max_attempts, spec.retry_delay) == (2.0, 4, 1.5)
    assert build_spec(sample_tasks.add, (1, 2), {}, {"retry_delay": 0}).retry_delay == 0.0
    assert build_spec(with_defaults, (), {}).max_attempts == 3
    assert build_spec(with_defaults, (), {}).retry_delay == 0.5


def test_default_timeout_applies_only_when_no_timeout_is_given() -> None:
    assert build_spec(sample_tasks.add, (1, 2), {}, default_timeout=9).timeout == 9
    assert build_spec(sample_tasks.add, (1, 2), {"timeout": 2}, default_timeout=9).timeout == 2.0
    assert build_spec(sample_tasks.add, (1, 2), {}, {"timeout": 3}, default_timeout=9).timeout == 3
    assert build_spec(with_defaults, (), {}, default_timeout=9).timeout == 4.0
    assert build_spec(sample_tasks.add, (1, 2), {}).timeout is None


def test_task_name_must_be_a_str() -> None:
    assert "task_name" in spec_error(sample_tasks.add, 1, 2, task_name=5)
