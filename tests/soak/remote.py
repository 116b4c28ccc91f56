"""A task module that lets a test drive a `python run.py` server from outside, through stdin.

Load it with `python run.py --tasks tests.soak.remote ...` and the environment variable
`TASKCAST_REMOTE=1`; without the variable, importing it does nothing. A daemon thread then
waits for the server's runner, writes `{"ready": <pid>}` on stdout, and answers one JSON line
per command line, using only the public task API from a thread, as any view or script would:

    {"start": "tests.support.sample_tasks.add", "args": [1, 2], "kwargs": {}}  ->  {"id": "..."}
    {"fetch": "<id>"}  ->  {"status": "success", "result": "3", "error": null} (or null)

A command that fails answers {"error": "<ExceptionType>: <message>"}: after SIGTERM, `start`
answers RunnerClosedError. Used by tests/test_restarts.py for restarts and shutdowns.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from taskcast import defaults, tasks
from taskcast.errors import NoRunnerError

ENABLE = "TASKCAST_REMOTE"


def answer(command: dict[str, Any]) -> dict[str, Any]:
    if "start" in command:
        task_id = tasks.async_task(
            command["start"], *command.get("args", ()), **command.get("kwargs", {})
        )
        return {"id": task_id}
    if "fetch" in command:
        record = tasks.get_task(command["fetch"])
        if record is None:
            return {"record": None}
        return {
            "record": {
                "status": record.status.value,
                "result": repr(record.result),
                "error": record.error,
            }
        }
    raise ValueError(f"unknown command {sorted(command)}")


def serve() -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            defaults.RUNNER.get()
            break
        except NoRunnerError:
            time.sleep(0.02)
    reply({"ready": os.getpid()})
    for line in sys.stdin:
        try:
            response = answer(json.loads(line))
        except Exception as exc:
            response = {"error": f"{type(exc).__name__}: {exc}"}
        reply(response)


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if os.environ.get(ENABLE) == "1":
    threading.Thread(target=serve, name="taskcast-remote", daemon=True).start()
