"""The command line (`taskcast`, `python -m taskcast`, `run.py`): flags, and the exposed-server warning."""

from __future__ import annotations

import logging

import pytest
from taskcast import cli as run


def test_defaults_bind_to_loopback() -> None:
    args = run.parse_args([])
    assert (args.host, args.port, args.db) == ("127.0.0.1", 8080, "data/taskcast.sqlite3")
    assert args.tasks is None and args.shutdown_grace == 5.0


def test_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCAST_TOKEN", "from-the-env")
    args = run.parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--db",
            ":memory:",
            "--workers",
            "3",
            "--tasks",
            "a",
            "--tasks",
            "b",
            "--allowed-origin",
            "https://x.example",
            "--shutdown-grace",
            "2",
            "--timezone",
            "Europe/Warsaw",
        ]
    )
    assert (args.host, args.port, args.db, args.workers) == ("0.0.0.0", 9000, ":memory:", 3)
    assert args.tasks == ["a", "b"] and args.allowed_origin == ["https://x.example"]
    assert args.token == "from-the-env" and args.shutdown_grace == 2.0
    assert args.timezone == "Europe/Warsaw"


def test_exposed_without_a_token_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="taskcast")
    assert run.warn_if_exposed("0.0.0.0", None) is True
    assert "without a token" in caplog.text
    assert run.warn_if_exposed("0.0.0.0", "a-token") is False
    assert run.warn_if_exposed("127.0.0.1", None) is False
    assert run.warn_if_exposed("::1", None) is False
    assert run.warn_if_exposed("localhost", None) is False
