"""What a task shows on its page besides its own events: `RemoteScreen`, Pytigon's log on the
page, and the progress events of `cproxy.progress()`.

Both only build event HTML in the element's mini-language and hand it to a publisher; they know
nothing of where events go.
"""

from __future__ import annotations

import html
import logging
from html.parser import HTMLParser
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


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data.strip())


def to_txt(html_txt: str) -> str:
    """The text of an HTML fragment, its pieces joined by spaces (what a log line shows)."""
    parser = _TextOnly()
    try:
        parser.feed(html_txt)
        parser.close()
    except Exception as exc:  # a log line must never fail the task
        logger.error("RemoteScreen: cannot read %.200r as HTML: %s", html_txt, exc)
        return ""
    return " ".join(parser.parts)


class RemoteScreen:
    """A log on the page: `info()`, `warning()`... append styled lines to a `div.log`.

    Pytigon's class, with its arguments and behaviour: `RemoteScreen(cproxy=None,
    direction="down")`. Without a `cproxy` (the task was called directly) `raw_print` prints
    and the lines go to the log as text, as in Pytigon.
    """

    _CLASSES: ClassVar[dict[str, tuple[str, int]]] = {
        "log": ("log-line", logging.INFO),
        "info": ("text-info", logging.INFO),
        "warning": ("text-warning", logging.WARNING),
        "error": ("text-white bg-danger", logging.ERROR),
    }

    def __init__(self, cproxy: EventSender | None = None, direction: str = "down") -> None:
        self.cproxy = cproxy
        self.direction = direction

    def __enter__(self) -> RemoteScreen:
        self.raw_print("<div class='log'></div>===>>")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def raw_print(self, html_txt: str) -> None:
        """Send `html_txt` as it is (an event in the mini-language); print it without a cproxy."""
        if self.cproxy:
            self.cproxy.send_event(html_txt)
        else:
            print(html_txt)

    def _line(self, kind: str, html_txt: str) -> None:
        css, level = self._CLASSES[kind]
        # `direction` is read at each line, as in Pytigon: anything but "down" puts it on top.
        marker = "===>>.log" if self.direction == "down" else "===<<.log"
        if self.cproxy:
            self.raw_print(f"<p class='{css}'>{html_txt}</p>{marker}")
        else:
            logger.log(level, "%s", to_txt(html_txt))

    def log(self, html_txt: str) -> None:
        self._line("log", html_txt)

    def info(self, html_txt: str) -> None:
        self._line("info", html_txt)

    def warning(self, html_txt: str) -> None:
        self._line("warning", html_txt)

    def error(self, html_txt: str) -> None:
        self._line("error", html_txt)
