"""A failed task's error text: Django Q's `"<exception> : <traceback>"`, with the traceback
cut down to the user's own frames.

Whatever ran the task (Taskcast's runner, worker and `@publish` wrapper, asyncio, the process
pool of `concurrent.futures`) is left out: a process task's exception arrives with the worker's
traceback as text (`_RemoteTraceback`) and the server's frames after it, and neither says
anything about the task. When no frame of the user's is left (Taskcast itself failed), the
whole traceback is kept, since then it is the one that helps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import traceback

import taskcast

__all__ = ["error_text", "user_traceback"]

#: folders whose frames are the machinery that ran the task, not the task
_MACHINERY = tuple(
    os.path.dirname(module.__file__) + os.sep
    for module in (taskcast, asyncio, concurrent.futures)
    if module.__file__ is not None
)
_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line \d+')


def _is_machinery(line: str) -> bool:
    match = _FRAME.match(line)
    return match is not None and match["file"].startswith(_MACHINERY)


def clean(text: str) -> str:
    """`text`, a formatted traceback, without the frames of the machinery; unchanged when
    nothing else would be left."""
    kept: list[str] = []
    dropping = False
    user_frames = 0
    for line in text.splitlines(keepends=True):
        if line.startswith('  File "'):
            dropping = _is_machinery(line)
            user_frames += not dropping
        elif not line.startswith("    "):
            dropping = False  # a header, the exception, or the text between chained ones
        if not dropping:
            kept.append(line)
    return "".join(kept) if user_frames else text


def _remote(exc: BaseException) -> str | None:
    """The worker's traceback of a process task's exception, None for any other."""
    cause = exc.__cause__
    if type(cause).__name__ != "_RemoteTraceback":
        return None
    text = str(cause).strip()
    if text.startswith('"""') and text.endswith('"""'):
        text = text[3:-3]
    return text.strip("\n") + "\n"


def user_traceback(exc: BaseException) -> str:
    """The traceback of a task's exception, as the task's code saw it."""
    remote = _remote(exc)
    return clean(remote if remote is not None else "".join(traceback.format_exception(exc)))


def error_text(exc: BaseException) -> str:
    """Django Q's text for a failed task (`worker.py`): the exception, " : ", the traceback."""
    return f"{exc} : {user_traceback(exc)}"
