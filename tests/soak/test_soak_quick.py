"""The soak's --quick mode (10 seconds) as part of the test suite; see tests/soak/soak.py."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def test_the_quick_soak_passes() -> None:
    soak = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.soak.soak",
        "--quick",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(soak.communicate(), timeout=50)
    finally:
        if soak.returncode is None:
            soak.kill()
            await soak.wait()
    text = output.decode(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith(("soak:", "problem:"))]
    print("\n".join(lines))
    assert soak.returncode == 0, text[-5000:]
    assert lines[-1].startswith("soak: OK;"), lines[-20:]
