"""Debian's chromium for the browser tests: where it is, how to start it, and when to skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> Path:
    """The browser; without it a test skips, except under CI where it fails."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if "CI" in os.environ:
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM
