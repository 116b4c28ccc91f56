"""The scheduler's time: the clock it reads and the time zone its rules compute in.

The clock is a plain function, so tests pass one they move by hand.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def time_zone(name: str | None) -> tzinfo:
    """The IANA zone `name`, or the server's own zone (TZ, then /etc/localtime, else UTC)."""
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            raise ValueError(f"Settings.timezone: no IANA time zone named {name!r}") from None
    local = os.environ.get("TZ", "").lstrip(":")
    try:
        if local:
            return zoneinfo.ZoneInfo(local)
        with open("/etc/localtime", "rb") as file:
            return zoneinfo.ZoneInfo.from_file(file, key="localtime")
    except (OSError, ValueError, zoneinfo.ZoneInfoNotFoundError):
        return UTC
