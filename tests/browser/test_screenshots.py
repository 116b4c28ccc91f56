"""scripts/screenshots.py, which makes the README's pictures, still runs against the real app."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshots.py"
PNG = b"\x89PNG\r\n\x1a\n"


async def test_the_screenshot_script_saves_small_pngs(chromium: Path, tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("taskcast_screenshots", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    saved = await script.take(tmp_path, tmp_path / "taskcast.sqlite3")
    assert sorted(path.name for path in saved) == [
        "task-desktop-light.png",
        "task-phone-dark.png",
        "tasks-desktop-light.png",
        "tasks-phone-dark.png",
    ]
    for path in saved:
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) < 200 * 1024, path.name
