"""What a task shows on its page besides its own events: `RemoteScreen`, Pytigon's log on the
page, and the progress events of `cproxy.progress()`.

Both only build event HTML in the element's mini-language and hand it to a publisher; they know
nothing of where events go.
"""

from __future__ import annotations

import html
import logging
from types import TracebackType
from typing import Any, ClassVar, Protocol

# Without a page, RemoteScreen logs where a @publish function's events go without a runner.
logger = logging.getLogger("taskcast.publish")


class EventSender(Protocol):
    """What RemoteScreen writes to: a task's `cproxy`."""

    def send_event(self, value: Any) -> None: ...


class ProgressReport:
    """Turns progress calls into events any <ptig-task> renders, at most five a second.

    The first event puts a `div.ptig-progress` first in the element; later ones replace its
    content. The text is escaped: it may come from what a user typed.
    """

    INTERVAL = 0.2

    def __init__(self) -> None:
        self._started: float | None = None
        self._last_sent = -1.0

    def event(self, done: float, total: float | None, text: str, now: float) -> str | None:
        first = self._started is None
        if self._started is None:
            self._started = now
        finished = total is not None and done >= total
        if not first and not finished and now - self._last_sent < self.INTERVAL:
            return None
        self._last_sent = now
        parts = []
        if total:
            fraction = max(0.0, min(1.0, done / total))
            parts.append(f"{fraction * 100:.0f}%")
            if 0 < fraction < 1 and now > self._started:
                parts.append(
                    f"about {_duration((now - self._started) * (1 - fraction) / fraction)} left"
                )
            bar = f"<progress value='{done:g}' max='{total:g}'></progress>"
        else:
            parts.append(f"{done:g} done")
            bar = "<progress></progress>"
        if text:
            parts.append(html.escape(text, quote=True))
        label = f"<span class='ptig-progress-text'>{' · '.join(parts)}</span>"
        if first:
            return f"<div class='ptig-progress'>{bar}{label}</div>===<<"
        return f"{bar}{label}===>.ptig-progress"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class RemoteScreen:
    """A log on the page: `info()`, `warning()`... append styled lines to a `div.log`."""

    _CLASSES: ClassVar[dict[str, str]] = {
        "log": "log-line",
        "info": "text-info",
        "warning": "text-warning",
        "error": "text-white bg-danger",
    }

    def __init__(self, cproxy: EventSender | None, direction: str = "down") -> None:
        self.cproxy = cproxy
        self._marker = "===>>.log" if direction == "down" else "===<<.log"

    def __enter__(self) -> RemoteScreen:
        if self.cproxy:
            self.cproxy.send_event("<div class='log'></div>===>>")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def _line(self, kind: str, html: str) -> None:
        if self.cproxy:
            self.cproxy.send_event(f"<p class='{self._CLASSES[kind]}'>{html}</p>{self._marker}")
        else:
            level = {
                "log": logging.INFO,
                "info": logging.INFO,
                "warning": logging.WARNING,
                "error": logging.ERROR,
            }[kind]
            logger.log(level, "%s", html)

    def log(self, html: str) -> None:
        self._line("log", html)

    def info(self, html: str) -> None:
        self._line("info", html)

    def warning(self, html: str) -> None:
        self._line("warning", html)

    def error(self, html: str) -> None:
        self._line("error", html)
