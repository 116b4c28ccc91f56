"""A real `python run.py` driven from outside: started on a free 127.0.0.1 port in a process
group of its own, told what to start through stdin (tests/soak/remote.py: the public task API
from a thread of the server), answering one JSON line per command on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
#: where the test tasks live
TASKS = "tests.support.sample_tasks."


class RemoteServer:
    """One `python run.py` process and its remote control."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, port: int) -> None:
        self.name = name
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @classmethod
    async def launch(
        cls, name: str, port: int, flags: list[str], log: IO[bytes], timeout: float = 30.0
    ) -> asyncio.subprocess.Process:
        """Start `run.py` with `flags` (and the test tasks and the remote) on `port`; return
        once it has said it is ready and listens."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "run.py",
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--tasks", "tests.support.sample_tasks", "--tasks", "tests.soak.remote"),
            *flags,
            cwd=ROOT,
            env={**os.environ, "TASKCAST_REMOTE": "1"},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # its own process group, workers included
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
        assert line and "ready" in json.loads(line), f"{name} did not start: {line!r}"
        async with asyncio.timeout(timeout):  # the runner is up before the site listens
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                return process

    async def _read(self, timeout: float = 10) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert line, f"{self.name}'s remote closed"
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def call(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        return await self._read()

    async def start_task(self, func: str, *args: Any, **kwargs: Any) -> str:
        """Start `tests.support.sample_tasks.<func>` with the public task API; its id."""
        answer = await self.call(start=TASKS + func, args=args, kwargs=kwargs)
        assert "id" in answer, answer
        task_id: str = answer["id"]
        return task_id
