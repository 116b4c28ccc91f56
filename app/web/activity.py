"""What is going on now, for the task list: how many tasks run and wait, why they wait, and how
far each running task has got.

Progress is read from the hub's kept history of a running task's stream when a page asks (the
latest `<progress>` a task sent, as `cproxy.progress()` and Pytigon's pages write it), so the
event hot path does no work for it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from taskcast.hub.hub import Hub
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.queue import LIMIT_SETTINGS
from taskcast.runtime.runner import Runner

#: the most task ids one request may ask the progress of
MAX_IDS = 100

_PROGRESS = re.compile(r"<progress\b([^>]*)>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""\b(value|max)\s*=\s*["']?([0-9.eE+-]+)""", re.IGNORECASE)
_LABEL = re.compile(r"class=['\"]ptig-progress-text['\"]>(.*?)</span>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def counts(runner: Runner) -> dict[str, Any]:
    """Running and queued tasks, and in words why queued tasks wait (None when none waits)."""
    running, queued = runner.running_count, runner.queue_size
    return {"running": running, "queued": queued, "waiting": wait_reason(runner, running, queued)}


#: why a kind's tasks wait, in words
_HELD_BY = {
    "async": "the limit of async tasks is reached",
    "thread": "every thread worker is busy",
    "process": "every process worker is busy",
}


def wait_reason(runner: Runner, running: int, queued: int) -> str | None:
    """Why queued tasks wait, naming the limit and how to raise it; None when none waits."""
    if not queued:
        return None
    settings = runner.settings
    overall = settings.max_concurrency
    if overall is not None and running >= overall:
        setting, flag = LIMIT_SETTINGS["all"]
        return f"{queued} queued: the overall limit is reached ({setting} = {overall}, {flag})"
    for kind, load in runner.limits().items():
        if load.held and kind in _HELD_BY:
            setting, flag = LIMIT_SETTINGS[kind]
            return f"{load.waiting} queued: {_HELD_BY[kind]} ({setting} = {load.limit}, {flag})"
    return f"{queued} queued, about to start"


def parse_progress(data_json: str) -> dict[str, Any] | None:
    """The `<progress>` of one event as {"value", "max", "text"} (value None: no measure)."""
    found = _PROGRESS.search(data_json)
    if found is None:
        return None
    attributes = {name.lower(): value for name, value in _ATTRIBUTE.findall(found.group(1))}
    try:
        value = float(attributes["value"]) if "value" in attributes else None
        top = float(attributes.get("max", "1"))
    except ValueError:
        value, top = None, 1.0
    label = _LABEL.search(data_json)
    text = html.unescape(_TAG.sub("", label.group(1))).strip() if label else ""
    if value is not None and top > 0:
        percent = max(0, min(100, round(100 * value / top)))
        text = text or f"{percent}%"
    return {"value": value, "max": top, "text": text}


def progress_of(hub: Hub, record: TaskRecord) -> dict[str, Any] | None:
    """The latest progress a running task sent to its stream, or None."""
    if record.status is not TaskStatus.RUNNING or record.stream_id is None:
        return None
    stream = hub.get(record.stream_id)
    if stream is None or stream.run_id != record.id:
        return None
    for event in reversed(stream.history()):
        if "progress" in event.data_json:  # the JSON text: a cheap test before decoding
            data = event.data
            found = parse_progress(data) if isinstance(data, str) else None
            if found is not None:
                return found
    return None


def progress_map(
    runner: Runner, hub: Hub, ids: list[str], can_see: Callable[[TaskRecord], bool]
) -> dict[str, dict[str, Any]]:
    """Progress of those of `ids` that are running now and may be seen (the others are left
    out)."""
    active = {record.id: record for record in runner.active_records() if can_see(record)}
    found = {}
    for task_id in ids[:MAX_IDS]:
        record = active.get(task_id)
        progress = progress_of(hub, record) if record is not None else None
        if progress is not None:
            found[task_id] = progress
    return found
