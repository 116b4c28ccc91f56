"""A failed task's error text made readable: its headline (the exception and its message) and
its traceback without the frames of what ran the task.

A record's error is Django Q's `"<exception> : <traceback>"` (`tracebacks.error_text`), or a
plain sentence when the task did not raise ("timed out after 3 s"). Records written by an
earlier version, or by a worker of another process, may still hold Taskcast's frames, so they
are left out here as well, by path, for a page to show only the frames of the task's own code.
"""

from __future__ import annotations

import dataclasses
import os
import re

import taskcast

__all__ = ["Failure", "explain", "without_machinery"]

TRACEBACK_HEADER = "Traceback (most recent call last):"
_PACKAGE = os.path.dirname(taskcast.__file__ or "") + os.sep
#: frames of the pool that ran a process task, wherever Python is installed
_POOL = re.compile(r"[/\\]concurrent[/\\]futures[/\\]")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line \d+')
#: a line that states an exception: `Name: message` or a bare `Name` (dotted names allowed)
_EXCEPTION_LINE = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")
_NOT_EXCEPTIONS = ("Traceback", "During handling", "The above exception")


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """What a page says about a task that did not succeed."""

    #: the exception's class as the traceback names it ("ValueError"), "" when nothing raised
    exception: str
    #: the exception's message, or the whole error sentence when nothing raised
    message: str
    #: the traceback without the machinery's frames, "" when there is none
    traceback: str
    #: how many frames were left out
    hidden_frames: int


def _is_machinery(path: str) -> bool:
    return path.startswith(_PACKAGE) or _POOL.search(path) is not None


def without_machinery(text: str) -> tuple[str, int]:
    """A formatted traceback without the frames of Taskcast and `concurrent.futures` (each
    frame is its `File` line and the source lines under it), and how many were left out."""
    kept: list[str] = []
    dropping = False
    hidden = 0
    for line in text.splitlines(keepends=True):
        frame = _FRAME.match(line)
        if frame is not None and line.startswith("  File"):
            dropping = _is_machinery(frame["file"])
            hidden += dropping
        elif not line.startswith("    "):
            dropping = False  # a header, an exception, or the text between chained ones
        if not dropping:
            kept.append(line)
    return "".join(kept), hidden


def _headline(traceback: str) -> tuple[str, str]:
    """The last exception a traceback states: its class and its message (which may take
    several lines)."""
    lines = traceback.rstrip("\n").splitlines()
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if line.startswith((" ", "\t")) or line.startswith(_NOT_EXCEPTIONS) or not line:
            continue
        match = _EXCEPTION_LINE.match(line)
        if match is None:
            continue
        message = "\n".join([match["message"] or "", *lines[index + 1 :]]).strip()
        return match["name"], message
    return "", lines[-1].strip() if lines else ""


def explain(error: str | None) -> Failure | None:
    """The headline and cleaned traceback of a record's `error`; None without one."""
    if not error or not error.strip():
        return None
    start = error.find(TRACEBACK_HEADER)
    if start < 0:
        return Failure("", error.strip(), "", 0)
    traceback, hidden = without_machinery(error[start:])
    exception, message = _headline(traceback)
    if not exception:
        # a traceback we cannot read: the text before it is the exception's str()
        message = error[:start].removesuffix(" : ").strip() or message
    return Failure(exception, message, traceback, hidden)
