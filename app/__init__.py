"""Taskcast: background tasks with live output in the browser, inside one aiohttp process.

The task API is `taskcast.tasks` (Django Q's calls) and `taskcast.publish` (Pytigon's
`@publish`); `create_app` builds the whole server and `setup` adds Taskcast to a host's
aiohttp application, whose views reach it as `app[TASKCAST]`. The web names are imported
lazily, so process-pool workers, which only need the task API, never load aiohttp.web.

The source folder of this package is `app/` in a checkout; it is only ever imported as
`taskcast`, so that no module is loaded twice under two names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if __name__ != "taskcast":
    raise ImportError(
        f"Taskcast's package is imported as 'taskcast', not {__name__!r}: install the checkout "
        "(pip install -e .) and import taskcast"
    )

from taskcast.errors import (
    NoRunnerError,
    StreamBusyError,
    TaskCancelled,
    TaskcastError,
    TaskSpecError,
    UnknownTaskError,
)
from taskcast.records import TaskRecord, TaskStatus
from taskcast.settings import Settings

if TYPE_CHECKING:
    from taskcast.web.embed import TASKCAST as TASKCAST
    from taskcast.web.embed import Taskcast as Taskcast
    from taskcast.web.embed import setup as setup
    from taskcast.web.factory import create_app as create_app

__all__ = [
    "TASKCAST",
    "NoRunnerError",
    "Settings",
    "StreamBusyError",
    "TaskCancelled",
    "TaskRecord",
    "TaskSpecError",
    "TaskStatus",
    "Taskcast",
    "TaskcastError",
    "UnknownTaskError",
    "create_app",
    "setup",
]

#: the names that need aiohttp.web, and the module each comes from
_WEB_NAMES = {
    "create_app": "taskcast.web.factory",
    "setup": "taskcast.web.embed",
    "Taskcast": "taskcast.web.embed",
    "TASKCAST": "taskcast.web.embed",
}


def __getattr__(name: str) -> Any:
    module = _WEB_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'taskcast' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
