"""Pytigon's publish and remote_screen modules as task code reaches them, under `taskcast.`."""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import uuid
from typing import Any

import pytest

from taskcast import publish as publish_module
from taskcast.publish import (
    DEFAULT_TIMEOUT,
    CommunicationBasePublisher,
    CommunicationBaseReceiver,
    CommunicationByCachePublisher,
    CommunicationByCacheReceiver,
    NotSupportedError,
    StreamPublisher,
    TaskContext,
    publish,
    running_in,
)
from taskcast.remote_screen import RemoteScreen, to_txt


def context(emitted: list[str], stream_id: str = "demo__5") -> TaskContext:
    return TaskContext("t" * 32, stream_id, emitted.append)


def test_publish_takes_pytigons_keyword_task_publish_group() -> None:
    @publish(task_publish_group="reports")
    def task(cproxy: Any = None, **kwargs: Any) -> str:
        return str(cproxy.id)

    assert task(task_publish_id=7) == "reports__7"
    assert task() == "reports"


def test_cproxy_id_is_the_stream_id_inside_and_outside_a_runner() -> None:
    @publish("demo")
    def task(cproxy: Any = None, **kwargs: Any) -> Any:
        return cproxy

    with running_in(context([])):
        inside = task(task_publish_id=5)
    assert isinstance(inside, StreamPublisher) and inside.id == "demo__5"
    assert task(task_publish_id="x").id == "demo__x"


def test_every_public_name_of_pytigons_publish_module_is_there() -> None:
    upstream_names = {
        "DEFAULT_TIMEOUT",
        "CommunicationBasePublisher",
        "CommunicationByCachePublisher",
        "CommunicationBaseReceiver",
        "CommunicationByCacheReceiver",
        "publish",
    }
    assert upstream_names <= set(publish_module.__all__)
    assert DEFAULT_TIMEOUT == 3600


def test_a_hand_made_cache_publisher_is_the_running_tasks_stream() -> None:
    emitted: list[str] = []
    with running_in(context(emitted, "demo__5")):
        publisher = CommunicationByCachePublisher("demo__5")
        assert publisher.id == "demo__5"
        with publisher as cproxy:
            cproxy.send_event("<li>1</li>===>>.data")
        with pytest.raises(NotSupportedError, match="other"):
            CommunicationByCachePublisher("other")
    with pytest.raises(NotSupportedError, match="cproxy"):
        CommunicationByCachePublisher("demo__5")
    assert emitted == ['"<li>1</li>===>>.data"']


def test_receivers_pass_events_to_the_observer_or_say_what_to_use() -> None:
    seen: list[Any] = []

    class Observer:
        def handle_start(self) -> None:
            seen.append("start")

        def handle_event(self, value: Any) -> None:
            seen.append(value)

        def handle_end(self) -> None:
            seen.append("end")

    receiver = CommunicationBaseReceiver("demo__1", Observer())
    receiver.handle_start()
    receiver.handle_event("x")
    receiver.handle_end()
    assert (receiver.id, receiver.process(), seen) == ("demo__1", False, ["start", "x", "end"])
    with pytest.raises(NotSupportedError, match="channel"):
        CommunicationByCacheReceiver("demo__1", Observer())


# -- events after close(), or after `with cproxy:` ------------------------------------------------


def test_send_event_after_close_does_not_fail_the_task_and_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emitted: list[str] = []

    @publish("demo")
    def task(cproxy: Any = None, **kwargs: Any) -> str:
        with cproxy:
            cproxy.send_event("inside")
        cproxy.send_event("after the with block")
        cproxy.close()
        cproxy.send_event("after close")
        return "finished"

    caplog.set_level(logging.WARNING, logger="taskcast.publish")
    with running_in(context(emitted)):
        assert task(task_publish_id=5) == "finished"
    assert emitted == ['"inside"']
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2 and "after close" in dropped[1]


# -- values that are not JSON ----------------------------------------------------------------------


class Color:
    def __str__(self) -> str:
        return "blue"


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (datetime.date(2024, 3, 31), "2024-03-31"),
        (datetime.datetime(2024, 3, 31, 2, 30, 15), "2024-03-31T02:30:15"),
        (datetime.time(8, 5), "08:05:00"),
        (b"<li>bytes</li>===>>.data", "<li>bytes</li>===>>.data"),
        (b"\xff", "\ufffd"),
        (decimal.Decimal("1.10"), "1.10"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"),
        (Color(), "blue"),
        ({"when": datetime.date(2024, 1, 2), (1, 2): {3}}, {"when": "2024-01-02", "[1, 2]": [3]}),
    ],
)
def test_a_value_that_is_not_json_reaches_the_stream_as_text(value: object, sent: object) -> None:
    emitted: list[str] = []
    with running_in(context(emitted)):

        @publish("demo")
        def task(cproxy: Any = None, **kwargs: Any) -> None:
            cproxy.send_event(value)

        task(task_publish_id=5)
    assert [json.loads(text) for text in emitted] == [sent]


def test_a_circular_value_is_sent_as_its_text() -> None:
    emitted: list[str] = []
    circular: list[Any] = [1]
    circular.append(circular)
    StreamPublisher(context(emitted), "demo__5").send_event(circular)
    assert json.loads(emitted[0]) == [1, "[1, [...]]"]


# -- RemoteScreen ----------------------------------------------------------------------------------


class Recorder(CommunicationBasePublisher):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def send_event(self, value: Any) -> None:
        self.events.append(value)


def test_remote_screen_without_a_proxy_prints_and_logs_text(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskcast.publish")
    with RemoteScreen() as screen:
        screen.raw_print("<b>raw</b>===>>.log")
        screen.warning("<b>disk</b><i>full</i>")
    assert capsys.readouterr().out == "<div class='log'></div>===>>\n<b>raw</b>===>>.log\n"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.WARNING, "disk full")]


def test_remote_screen_raw_print_and_direction_as_in_pytigon() -> None:
    recorder = Recorder()
    screen = RemoteScreen(recorder, direction="up")
    assert (screen.cproxy, screen.direction) == (recorder, "up")
    with screen:
        screen.raw_print("<hr/>===>.log")
        screen.log("top")
        screen.direction = "down"
        screen.log("bottom")
    assert recorder.events == [
        "<div class='log'></div>===>>",
        "<hr/>===>.log",
        "<p class='log-line'>top</p>===<<.log",
        "<p class='log-line'>bottom</p>===>>.log",
    ]


def test_to_txt_keeps_the_text_of_html() -> None:
    assert to_txt("<p class='x'>a <b>b</b></p>") == "a b"
    assert to_txt("plain") == "plain"
