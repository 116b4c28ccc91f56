"""Tests of taskcast.names (human names for task ids) and taskcast.settings (the server's knobs)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from taskcast.names import _WORDS, human_name
from taskcast.settings import Settings

# -- human names -----------------------------------------------------------------------------------


def test_human_name_is_four_hyphen_joined_words() -> None:
    name = human_name(uuid.uuid4().hex)
    words = name.split("-")
    assert len(words) == 4
    assert all(word in _WORDS for word in words)
    assert name == name.lower()


def test_same_id_gives_the_same_name() -> None:
    task_id = uuid.uuid4().hex
    assert human_name(task_id) == human_name(task_id)
    assert human_name("0" * 32) == human_name("0" * 32) == "acorn-acorn-acorn-acorn"


def test_a_task_id_is_named_by_xor_of_each_quarter_of_its_bytes() -> None:
    # The names of stored tasks must not change: each word is the XOR of four of the id's bytes.
    for task_id in [
        "0" * 32,
        "f" * 32,
        "0123456789abcdef" * 2,
        *(uuid.uuid4().hex for _ in range(500)),
    ]:
        raw = bytes.fromhex(task_id)
        expected = []
        for quarter in range(4):
            folded = 0
            for byte in raw[quarter * 4 : quarter * 4 + 4]:
                folded ^= byte
            expected.append(_WORDS[folded])
        assert human_name(task_id) == "-".join(expected), task_id
    assert human_name("0102") == human_name("0102", words=4)  # not 32 digits: the byte path


def test_different_ids_almost_always_give_different_names() -> None:
    ids = {uuid.uuid4().hex for _ in range(1000)}
    names = {human_name(task_id) for task_id in ids}
    assert len(ids) == 1000
    assert len(names) > 990


def test_ids_differing_in_one_digit_get_different_names() -> None:
    base = "0" * 32
    names = {human_name(base[:index] + "1" + base[index + 1 :]) for index in range(32)}
    assert human_name(base) not in names
    # Each quarter of the id names its own word.
    assert human_name("1" + "0" * 31).split("-")[1:] == ["acorn"] * 3
    assert human_name("0" * 31 + "1").split("-")[:3] == ["acorn"] * 3


# -- settings --------------------------------------------------------------------------------------


def test_build_without_overrides_gives_the_defaults() -> None:
    assert Settings.build() == Settings()


def test_build_merges_overrides_into_the_given_settings() -> None:
    base = Settings(database=":memory:", thread_workers=3)
    built = Settings.build(base, max_concurrency=5, default_timeout=30.0)
    assert built.database == ":memory:"
    assert built.thread_workers == 3
    assert built.max_concurrency == 5
    assert built.default_timeout == 30.0
    assert base.max_concurrency is None  # the base is left as it was
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.max_concurrency = 1  # type: ignore[misc]


def test_build_names_every_unknown_keyword() -> None:
    with pytest.raises(TypeError) as caught:
        Settings.build(workers=3, databse="x.db", thread_workers=2)
    message = str(caught.value)
    assert "workers" in message and "databse" in message
    assert "unknown setting(s): databse, workers;" in message


def test_build_turns_task_modules_and_origins_into_tuples() -> None:
    built = Settings.build(
        task_modules=["tasks", "app.more_tasks"], allowed_origins=["https://a.example"]
    )
    assert built.task_modules == ("tasks", "app.more_tasks")
    assert built.allowed_origins == ("https://a.example",)


def test_a_plain_str_for_task_modules_is_refused() -> None:
    with pytest.raises(TypeError, match="task_modules"):
        Settings(task_modules="tasks")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="task_modules"):
        Settings.build(task_modules="tasks")


@pytest.mark.parametrize(
    "name", ["process_workers", "thread_workers", "max_async_tasks", "max_concurrency"]
)
def test_worker_counts_must_be_at_least_one(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.build(None, **{name: 0})
    with pytest.raises(ValueError, match=name):
        Settings.build(None, **{name: -2})
    assert getattr(Settings.build(None, **{name: 1}), name) == 1


@pytest.mark.parametrize("method", ["fork", "", "Spawn"])
def test_start_method_must_be_forkserver_or_spawn(method: str) -> None:
    with pytest.raises(ValueError, match="start_method"):
        Settings.build(start_method=method)


def test_start_method_spawn_and_forkserver_are_accepted() -> None:
    assert Settings.build(start_method="spawn").start_method == "spawn"
    assert Settings.build(start_method="forkserver").start_method == "forkserver"


@pytest.mark.parametrize(
    "limits",
    [
        {"history_max_events": 20, "history_keep_head": 20},
        {"history_max_events": 5, "history_keep_head": 20},
        {"history_max_events": 10, "history_keep_head": 10},
    ],
)
def test_history_must_hold_more_than_its_kept_head(limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="history_max_events"):
        Settings.build(**limits)


def test_history_just_above_its_head_is_accepted() -> None:
    built = Settings.build(history_max_events=21, history_keep_head=20)
    assert (built.history_max_events, built.history_keep_head) == (21, 20)


@pytest.mark.parametrize("value", [0, -1.0])
def test_default_timeout_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError, match="default_timeout"):
        Settings.build(default_timeout=value)


@pytest.mark.parametrize("value", [-0.001, 1.5])
def test_write_window_is_between_zero_and_one_second(value: float) -> None:
    with pytest.raises(ValueError, match="write_window"):
        Settings.build(write_window=value)
    assert Settings.build(write_window=0).write_window == 0


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan")])
def test_channel_heartbeat_is_a_positive_number_of_seconds(value: float) -> None:
    with pytest.raises(ValueError, match="channel_heartbeat"):
        Settings.build(channel_heartbeat=value)
    assert Settings.build(channel_heartbeat=0.5).channel_heartbeat == 0.5
