"""The ceiling: the least a server can do to speak the channel protocol, as a reference.

A minimal aiohttp server with Taskcast's channel (`{"ping"}` answered `{"status":"pong"}`,
`{"id": ...}` subscribes; `start`, `event` with `seq`, `stop`, then close 1000) and its start
endpoint (`POST /api/tasks`), and nothing else: no history, no store, no per-subscriber queue,
no limits. Each event is JSON-encoded once, framed once as a websocket text frame, and written to
every subscriber's transport without awaiting.

It runs the functions of `bench.tasks` (their bodies, through `__wrapped__`) with a publisher of
its own: `async def` ones on its loop; plain `def` ones in one pre-started worker process that
sends each event's JSON text over a pipe (length-prefixed), read on the loop. `drive_tasks` is
answered with the least that runs tasks: asyncio tasks, or a warm `ProcessPoolExecutor`.

    python -m bench.ceiling --port 8090
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import inspect
import json
import multiprocessing
import os
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import WSMsgType, web

from bench import tasks

CHANNEL = "/schtasks/show_task_events/channel/"
HEADER = struct.Struct("!I")
END = 0  # a zero length on the pipe: the task has returned
KEPT_RESULTS = 1000


def text_frame(text: str) -> bytes:
    """A server's (unmasked) websocket text frame."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


START = text_frame('{"status":"start"}')
PONG = text_frame('{"status":"pong"}')


class Stream:
    """One run's subscribers; events go straight to their transports."""

    __slots__ = ("seq", "subscribers")

    def __init__(self, subscribers: dict[web.WebSocketResponse, asyncio.Transport]) -> None:
        self.subscribers = subscribers
        self.seq = 0

    def send_json(self, data_json: str) -> None:
        self.seq += 1
        frame = text_frame(f'{{"status":"event","data":{data_json},"seq":{self.seq}}}')
        for transport in self.subscribers.values():
            transport.write(frame)


class Publisher:
    """The `cproxy` of a task the ceiling runs on its loop."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    def send_event(self, value: Any) -> None:
        self._stream.send_json(json.dumps(value))


class Ceiling:
    def __init__(self) -> None:
        self.waiting: dict[str, dict[web.WebSocketResponse, asyncio.Transport]] = {}
        self.live: dict[str, Stream] = {}
        self.results: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.background: set[asyncio.Task[Any]] = set()
        self.worker: Worker | None = None
        self.executor: ProcessPoolExecutor | None = None

    def subscribe(self, stream_id: str, ws: web.WebSocketResponse, transport: Any) -> None:
        self.waiting.setdefault(stream_id, {})[ws] = transport

    def unsubscribe(self, stream_id: str, ws: web.WebSocketResponse) -> None:
        for table in (
            self.waiting.get(stream_id),
            getattr(self.live.get(stream_id), "subscribers", None),
        ):
            if table is not None:
                table.pop(ws, None)

    def open(self, stream_id: str) -> Stream:
        stream = Stream(self.waiting.pop(stream_id, {}))
        self.live[stream_id] = stream
        for transport in stream.subscribers.values():
            transport.write(START)
        return stream

    def close(self, stream_id: str, state: str) -> None:
        stream = self.live.pop(stream_id)
        stop = text_frame(json.dumps({"status": "stop", "state": state}, separators=(",", ":")))
        for ws, transport in stream.subscribers.items():
            transport.write(stop)
            self.spawn(ws.close())

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def finished(self, task_id: str, status: str, result: Any) -> None:
        self.results[task_id] = {"id": task_id, "status": status, "result": result}
        while len(self.results) > KEPT_RESULTS:
            self.results.popitem(last=False)

    async def run_async(
        self, task_id: str, stream_id: str, func: Callable[..., Any], kwargs: Any
    ) -> None:
        stream = self.open(stream_id)
        status, result = "success", None
        try:
            result = await func(cproxy=Publisher(stream), **kwargs)
        except Exception as exc:
            status, result = "failed", repr(exc)
        self.close(stream_id, status)
        self.finished(task_id, status, result)

    async def run_process(self, task_id: str, stream_id: str, name: str, kwargs: Any) -> None:
        assert self.worker is not None
        stream = self.open(stream_id)
        status, result = "success", None
        try:
            result = await self.worker.run(name, kwargs, stream)
        except Exception as exc:
            status, result = "failed", repr(exc)
        self.close(stream_id, status)
        self.finished(task_id, status, result)

    async def drive(self, task_id: str, kind: str, count: int) -> None:
        began = time.perf_counter()
        if kind == "async":
            runs = [
                asyncio.get_running_loop().create_task(tasks.trivial_async()) for _ in range(count)
            ]
        else:
            loop = asyncio.get_running_loop()
            runs = [
                loop.run_in_executor(self.executor, tasks.trivial_process) for _ in range(count)
            ]
        failed = 0
        for run in runs:
            try:
                await run
            except Exception:
                failed += 1
        seconds = time.perf_counter() - began
        self.finished(task_id, "success", {"count": count, "failed": failed, "seconds": seconds})


def worker_main(commands: Connection, events: Connection) -> None:
    """The ceiling's worker process: run each task it is sent, its events written to the pipe."""
    fd = events.fileno()

    def write(body: bytes) -> None:
        view = memoryview(HEADER.pack(len(body)) + body)
        while view:
            view = view[os.write(fd, view) :]

    class PipePublisher:
        def send_event(self, value: Any) -> None:
            write(json.dumps(value).encode())

    while True:
        try:
            name, kwargs = commands.recv()
        except EOFError:
            return
        result: Any = None
        try:
            result = getattr(tasks, name).__wrapped__(cproxy=PipePublisher(), **kwargs)
        finally:
            write(b"")
        commands.send(result)


class Worker:
    """One pre-started process and its event pipe, read on the loop."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("forkserver")
        self._commands, child_commands = context.Pipe()
        read_end, write_end = context.Pipe(duplex=False)
        self._events = read_end
        self._fd = read_end.fileno()
        os.set_blocking(self._fd, False)
        self.process = context.Process(
            target=worker_main, args=(child_commands, write_end), daemon=True
        )
        self.process.start()
        child_commands.close()
        write_end.close()
        self._buffer = bytearray()
        self._stream: Stream | None = None
        self._done: asyncio.Future[None] | None = None
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return
        buffer = self._buffer
        buffer += chunk
        start, size = 0, len(buffer)
        while size - start >= 4:
            (length,) = HEADER.unpack_from(buffer, start)
            end = start + 4 + length
            if end > size:
                break
            if length == END:
                if self._done is not None and not self._done.done():
                    self._done.set_result(None)
            elif self._stream is not None:
                self._stream.send_json(buffer[start + 4 : end].decode())
            start = end
        del buffer[:start]

    async def run(self, name: str, kwargs: Any, stream: Stream) -> Any:
        loop = asyncio.get_running_loop()
        self._stream, self._done = stream, loop.create_future()
        self._commands.send((name, kwargs))
        await self._done
        return await loop.run_in_executor(None, self._commands.recv)

    def stop(self) -> None:
        asyncio.get_running_loop().remove_reader(self._fd)
        self._commands.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


CEILING = web.AppKey("ceiling", Ceiling)


async def channel(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=4096)
    await ws.prepare(request)
    ceiling, transport = request.app[CEILING], request.transport
    stream_id: str | None = None
    try:
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                break
            frame = json.loads(message.data)
            if "ping" in frame:
                transport.write(PONG)  # type: ignore[union-attr]
            elif "id" in frame and stream_id is None:
                stream_id = frame["id"]
                ceiling.subscribe(frame["id"], ws, transport)
    finally:
        if stream_id is not None:
            ceiling.unsubscribe(stream_id, ws)
    return ws


async def start_task(request: web.Request) -> web.Response:
    body = await request.json()
    ceiling = request.app[CEILING]
    name = body["name"].rpartition(".")[2]
    kwargs = body.get("arguments", {})
    task_id = uuid.uuid4().hex
    if name == "drive_tasks":
        ceiling.spawn(
            ceiling.drive(task_id, kwargs.get("kind", "async"), kwargs.get("count", 1000))
        )
    else:
        stream_id = f"{tasks.GROUP}__{body['task_publish_id']}"
        func = getattr(tasks, name).__wrapped__
        if inspect.iscoroutinefunction(func):
            ceiling.spawn(ceiling.run_async(task_id, stream_id, func, kwargs))
        else:
            ceiling.spawn(ceiling.run_process(task_id, stream_id, name, kwargs))
    return web.json_response({"id": task_id, "status": "queued"}, status=201)


async def get_task(request: web.Request) -> web.Response:
    task_id = request.match_info["id"]
    record = request.app[CEILING].results.get(task_id, {"id": task_id, "status": "running"})
    return web.json_response(record)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def processes(app: web.Application) -> AsyncIterator[None]:
    ceiling = app[CEILING]
    ceiling.worker = Worker()
    ceiling.executor = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver"))
    loop = asyncio.get_running_loop()
    await asyncio.gather(
        *(loop.run_in_executor(ceiling.executor, tasks.trivial_process) for _ in range(4))
    )
    yield
    ceiling.worker.stop()
    ceiling.executor.shutdown(wait=True, cancel_futures=True)


def create_app() -> web.Application:
    app = web.Application()
    app[CEILING] = Ceiling()
    app.router.add_get(CHANNEL, channel)
    app.router.add_post("/api/tasks", start_task)
    app.router.add_get("/api/tasks/{id}", get_task)
    app.router.add_get("/api/health", health)
    app.cleanup_ctx.append(processes)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmark's ceiling server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
