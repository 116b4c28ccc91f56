"""Tests of taskcast.publish: the @publish decorator (contract A1-A6), the publishers, RemoteScreen."""

from __future__ import annotations

import inspect
import json
import logging
import pickle
from typing import Any

import pytest

from taskcast.errors import TaskCancelled
from taskcast.publish import (
    CommunicationBasePublisher,
    LogPublisher,
    RemoteScreen,
    StreamPublisher,
    TaskContext,
    current_task_id,
    publish,
    publish_group,
    running_in,
)
from tests.support import sample_tasks


@publish("demo")
def echo(*args: Any, cproxy: CommunicationBasePublisher | None = None, **kwargs: Any) -> Any:
    """Returns what it was called with, so a test sees exactly what the wrapper passed on."""
    return {"args": args, "kwargs": kwargs, "cproxy": cproxy}


def echo_plain(*args: Any, cproxy: CommunicationBasePublisher | None = None, **kwargs: Any) -> Any:
    return {"args": args, "kwargs": kwargs, "cproxy": cproxy}


@publish()
def in_default_group(cproxy: CommunicationBasePublisher | None = None, **kwargs: Any) -> Any:
    return cproxy


@publish("demo")
def send_all(
    values: list[Any], cproxy: CommunicationBasePublisher | None = None, **kwargs: Any
) -> int:
    if cproxy:
        for value in values:
            cproxy.send_event(value)
    return len(values)


@publish("demo")
def send_then_fail(cproxy: CommunicationBasePublisher | None = None, **kwargs: Any) -> None:
    if cproxy:
        cproxy.send_event("before")
    raise ValueError("task broke")


@publish("aio")
async def async_echo(
    *args: Any, cproxy: CommunicationBasePublisher | None = None, **kwargs: Any
) -> Any:
    if cproxy:
        cproxy.send_event("from async")
    return {"args": args, "kwargs": kwargs, "cproxy": cproxy}


@publish("aio")
async def async_fail(cproxy: CommunicationBasePublisher | None = None) -> None:
    raise KeyError("async broke")


class Recorder(CommunicationBasePublisher):
    """A publisher that keeps what it is sent."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.closed = 0

    def send_event(self, value: Any) -> None:
        self.events.append(value)

    def close(self) -> None:
        self.closed += 1


def context(emitted: list[str], task_id: str = "t" * 32, cancelled: bool = False) -> TaskContext:
    return TaskContext(task_id, "demo__5", emitted.append, lambda: cancelled)


# -- A1-A3: the decorator --------------------------------------------------------------------------


def test_publish_without_argument_uses_the_default_group() -> None:
    assert publish_group(in_default_group) == "default"
    assert publish_group(echo) == "demo"
    assert publish_group(echo_plain) is None
    with running_in(context([])):
        cproxy = in_default_group(task_publish_id=3)
    assert isinstance(cproxy, StreamPublisher)
    assert cproxy.stream_id == "default__3"


@pytest.mark.parametrize(
    ("publish_id", "stream_id"),
    [(5, "demo__5"), ("abc", "demo__abc"), (None, "demo"), ("", "demo"), (0, "demo")],
)
def test_stream_id_is_group_and_id_or_the_bare_group(publish_id: object, stream_id: str) -> None:
    with running_in(context([])):
        called = echo(task_publish_id=publish_id)
    assert called["cproxy"].stream_id == stream_id


def test_stream_id_without_a_publish_id_is_the_bare_group() -> None:
    with running_in(context([])):
        called = echo()
    assert isinstance(called["cproxy"], StreamPublisher)
    assert called["cproxy"].stream_id == "demo"


def test_task_publish_id_is_removed_and_other_arguments_pass_through() -> None:
    marker = object()
    called = echo(1, "two", marker, task_publish_id=5, size=3, options={"a": [1]})
    assert called["args"] == (1, "two", marker)
    assert called["args"][2] is marker
    assert called["kwargs"] == {"size": 3, "options": {"a": [1]}}


def test_cproxy_is_always_passed_as_a_keyword_and_overrides_the_callers() -> None:
    mine = Recorder()
    called = echo(cproxy=mine, task_publish_id=1)
    assert called["cproxy"] is not mine
    assert isinstance(called["cproxy"], CommunicationBasePublisher)

    @publish("kw")
    def keyword_only(*, cproxy: CommunicationBasePublisher | None = None) -> Any:
        return cproxy

    assert isinstance(keyword_only(), CommunicationBasePublisher)


def test_return_value_is_unchanged() -> None:
    value = {"rows": [1, 2, 3]}

    @publish("ret")
    def give(cproxy: CommunicationBasePublisher | None = None) -> dict[str, list[int]]:
        return value

    assert give() is value
    assert send_all(["a", "b"]) == 2


def test_without_the_decorator_the_task_runs_with_cproxy_none() -> None:
    called = echo_plain(1, task_publish_id=5)
    assert called["cproxy"] is None
    assert called["kwargs"] == {"task_publish_id": 5}
    assert sample_tasks.process_events.__wrapped__(count=3) == 3  # type: ignore[attr-defined]


def test_decorated_function_keeps_its_name_and_pickles_by_reference() -> None:
    assert sample_tasks.process_events.__name__ == "process_events"
    assert sample_tasks.process_events.__qualname__ == "process_events"
    restored = pickle.loads(pickle.dumps(sample_tasks.process_events))
    assert restored is sample_tasks.process_events


def test_publish_refuses_a_group_that_is_not_a_non_empty_str() -> None:
    with pytest.raises(TypeError, match="group"):
        publish("")
    with pytest.raises(TypeError, match="group"):
        publish(5)  # type: ignore[arg-type]


# -- A4-A6: the publisher --------------------------------------------------------------------------


def test_cproxy_is_truthy_with_send_event_close_and_a_context_manager() -> None:
    with running_in(context([])):
        in_runner = echo(task_publish_id=5)["cproxy"]
    outside = echo(task_publish_id=5)["cproxy"]
    for cproxy in (in_runner, outside):
        assert cproxy
        assert callable(cproxy.send_event) and callable(cproxy.close)
    recorder = Recorder()
    with recorder as entered:
        assert entered is recorder
        assert recorder.closed == 0
    assert recorder.closed == 1


def test_stream_publisher_context_manager_closes_it() -> None:
    emitted: list[str] = []
    publisher = StreamPublisher(context(emitted), "demo__5")
    with publisher:
        publisher.send_event("inside")
    assert publisher.closed
    publisher.send_event("after")  # dropped, as Pytigon's pages never see it
    assert emitted == ['"inside"']


def test_send_event_emits_each_value_json_encoded_in_call_order() -> None:
    emitted: list[str] = []
    values: list[Any] = [
        "<li>1</li>===>>.data",
        "é ✓",
        3,
        None,
        {"k": [1, 2]},
        "<li>1</li>===>>.data",
    ]
    with running_in(context(emitted)):
        assert send_all(values, task_publish_id=5) == len(values)
    assert emitted == [json.dumps(value) for value in values]
    assert [json.loads(text) for text in emitted] == values


def test_publisher_is_closed_when_the_task_returns() -> None:
    emitted: list[str] = []
    with running_in(context(emitted)):
        cproxy = echo(task_publish_id=5)["cproxy"]
        assert cproxy.closed
        cproxy.send_event("late")
    assert emitted == []


def test_exception_propagates_and_the_publisher_is_closed() -> None:
    emitted: list[str] = []
    seen: list[CommunicationBasePublisher] = []

    @publish("demo")
    def keep_and_fail(cproxy: CommunicationBasePublisher | None = None, **kwargs: Any) -> None:
        assert cproxy is not None
        seen.append(cproxy)
        cproxy.send_event("before")
        raise ValueError("task broke")

    with running_in(context(emitted)), pytest.raises(ValueError, match="task broke"):
        keep_and_fail(task_publish_id=5)
    assert isinstance(seen[0], StreamPublisher) and seen[0].closed
    assert emitted == ['"before"']


def test_send_event_raises_task_cancelled_when_the_task_is_cancelled() -> None:
    emitted: list[str] = []
    cancelled = False

    def is_cancelled() -> bool:
        return cancelled

    publisher = StreamPublisher(TaskContext("t1", "demo", emitted.append, is_cancelled), "demo")
    publisher.send_event("one")
    cancelled = True
    with pytest.raises(TaskCancelled):
        publisher.send_event("two")
    assert emitted == ['"one"']
    # TaskCancelled is not swallowed by `except Exception:` in task code.
    assert not issubclass(TaskCancelled, Exception)


def test_outside_a_runner_events_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="taskcast.publish")
    assert send_all(["<li>1</li>", "<li>2</li>"], task_publish_id=9) == 2
    messages = [r.getMessage() for r in caplog.records if r.name == "taskcast.publish"]
    assert len(messages) == 2
    assert "demo__9" in messages[0] and "<li>1</li>" in messages[0]
    assert "<li>2</li>" in messages[1]


def test_outside_a_runner_the_publisher_logs_a_value_that_is_not_json(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="taskcast.publish")
    publisher = echo(task_publish_id=1)["cproxy"]
    assert isinstance(publisher, LogPublisher)
    publisher.send_event(b"raw")
    assert "b'raw'" in caplog.records[-1].getMessage()


def test_task_exception_propagates_outside_a_runner() -> None:
    with pytest.raises(ValueError, match="task broke"):
        send_then_fail(task_publish_id=2)


# -- async tasks -----------------------------------------------------------------------------------


async def test_async_task_stays_a_coroutine_function_and_works_the_same() -> None:
    assert inspect.iscoroutinefunction(async_echo)
    assert publish_group(async_echo) == "aio"
    emitted: list[str] = []
    with running_in(context(emitted)):
        called = await async_echo(1, task_publish_id=7, cproxy=Recorder(), x=2)
    assert called["args"] == (1,)
    assert called["kwargs"] == {"x": 2}
    cproxy = called["cproxy"]
    assert isinstance(cproxy, StreamPublisher) and cproxy.stream_id == "aio__7"
    assert emitted == ['"from async"']
    assert cproxy.closed


async def test_async_task_exception_propagates_and_closes_the_publisher() -> None:
    seen: list[CommunicationBasePublisher] = []

    @publish("aio")
    async def keep_and_fail(cproxy: CommunicationBasePublisher | None = None) -> None:
        assert cproxy is not None
        seen.append(cproxy)
        raise KeyError("async broke")

    with running_in(context([])), pytest.raises(KeyError, match="async broke"):
        await keep_and_fail()
    assert isinstance(seen[0], StreamPublisher) and seen[0].closed
    with pytest.raises(KeyError):
        await async_fail()


async def test_async_task_without_the_decorator_runs_with_cproxy_none() -> None:
    called = await async_echo.__wrapped__(1, task_publish_id=3)  # type: ignore[attr-defined]
    assert called["cproxy"] is None
    assert called["kwargs"] == {"task_publish_id": 3}


# -- the task context ------------------------------------------------------------------------------


def test_current_task_id_inside_and_outside_a_context() -> None:
    assert current_task_id() is None
    with running_in(context([], task_id="a" * 32)):
        assert current_task_id() == "a" * 32
        with running_in(context([], task_id="b" * 32)):
            assert current_task_id() == "b" * 32
        assert current_task_id() == "a" * 32
    assert current_task_id() is None


def test_current_task_id_is_restored_when_the_block_raises() -> None:
    with pytest.raises(ValueError), running_in(context([], task_id="c" * 32)):
        assert sample_tasks.whoami() == "c" * 32
        raise ValueError
    assert current_task_id() is None


async def test_current_task_id_in_async_code() -> None:
    with running_in(context([], task_id="d" * 32)):
        assert await sample_tasks.async_whoami() == "d" * 32
    assert await sample_tasks.async_whoami() is None


# -- RemoteScreen ----------------------------------------------------------------------------------


def test_remote_screen_sends_the_log_container_and_styled_lines() -> None:
    recorder = Recorder()
    with RemoteScreen(recorder) as screen:
        screen.log("plain")
        screen.info("note")
        screen.warning("careful")
        screen.error("broken")
    assert recorder.events == [
        "<div class='log'></div>===>>",
        "<p class='log-line'>plain</p>===>>.log",
        "<p class='text-info'>note</p>===>>.log",
        "<p class='text-warning'>careful</p>===>>.log",
        "<p class='text-white bg-danger'>broken</p>===>>.log",
    ]


def test_remote_screen_other_direction_puts_newest_on_top() -> None:
    recorder = Recorder()
    with RemoteScreen(recorder, direction="up") as screen:
        screen.info("x")
        screen.error("y")
    assert recorder.events == [
        "<div class='log'></div>===>>",
        "<p class='text-info'>x</p>===<<.log",
        "<p class='text-white bg-danger'>y</p>===<<.log",
    ]


def test_remote_screen_inside_a_task_streams_through_cproxy() -> None:
    emitted: list[str] = []

    @publish("screen")
    def task(cproxy: CommunicationBasePublisher | None = None, **kwargs: Any) -> None:
        with RemoteScreen(cproxy) as screen:
            screen.log("working")

    with running_in(context(emitted)):
        task(task_publish_id=1)
    assert [json.loads(text) for text in emitted] == [
        "<div class='log'></div>===>>",
        "<p class='log-line'>working</p>===>>.log",
    ]


def test_remote_screen_without_cproxy_writes_through_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="taskcast.publish")
    with RemoteScreen(None) as screen:
        screen.log("plain")
        screen.info("note")
        screen.warning("careful")
        screen.error("broken")
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "taskcast.publish"]
    assert records == [
        (logging.INFO, "plain"),
        (logging.INFO, "note"),
        (logging.WARNING, "careful"),
        (logging.ERROR, "broken"),
    ]
