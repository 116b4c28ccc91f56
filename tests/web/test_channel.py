"""The channel, contract section B and Taskcast's extensions, through the real app."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from taskcast import tasks
from taskcast.hub.hub import StreamEvent, Subscription
from taskcast.web.close_pacing import ClosePacer
from taskcast.web.factory import create_app
from taskcast.web.keys import SOCKETS
from taskcast.web.socket_sink import ChannelSocket, SocketSink
from tests.conftest import ClientFactory
from tests.support.eventually import eventually
from tests.support.wsclient import CHANNEL, event_data, next_frame, read_until_closed

EVENTS = "tests.support.sample_tasks.async_events"


def items(count: int) -> list[str]:
    return [f"<li>{i}</li>===>>.data" for i in range(count)]


async def test_ping_is_answered_before_subscribing_and_mid_stream(
    client: TestClient[Any, Any],
) -> None:
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"ping": 1})
    assert await next_frame(ws) == {"status": "pong"}
    await ws.send_json({"ping": "anything"})
    assert await next_frame(ws) == {"status": "pong"}
    tasks.async_task(EVENTS, task_publish_id="p", count=20, pause=0.02)
    await ws.send_json({"id": "aio__p"})
    assert await next_frame(ws) == {"status": "start"}
    await ws.send_json({"ping": 1})
    frames = await read_until_closed(ws)
    assert {"status": "pong"} in frames
    assert event_data(frames) == items(20)[: len(event_data(frames))]
    assert frames[-1] == {"status": "stop", "state": "success"}
    assert sorted(f["seq"] for f in frames if f["status"] == "event")[-1] == 20


async def test_nothing_follows_stop_not_even_a_pong(client: TestClient[Any, Any]) -> None:
    # Pings that arrive while a replay ends are answered before `stop` or not at all (B15).
    task_id = tasks.async_task(EVENTS, task_publish_id="pings", count=300)
    await tasks.wait_task(task_id, timeout=10)
    for _ in range(5):
        ws = await client.ws_connect(CHANNEL)
        await ws.send_json({"id": "aio__pings"})
        for _ in range(300):
            await ws.send_json({"ping": 1})
        frames = await read_until_closed(ws)
        assert frames[-1] == {"status": "stop", "state": "success"}, frames[-3:]
        assert len(event_data(frames)) == 300
        assert ws.close_code == 1000


async def test_frames_in_order_with_seq_then_stop_and_close_1000(
    client: TestClient[Any, Any],
) -> None:
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "aio__order"})
    task_id = tasks.async_task(EVENTS, task_publish_id="order", count=100)
    frames = await read_until_closed(ws)
    assert frames[0] == {"status": "start"}
    assert frames[1:-1] == [
        {"status": "event", "data": data, "seq": seq} for seq, data in enumerate(items(100), 1)
    ]
    assert frames[-1] == {"status": "stop", "state": "success"}
    assert ws.close_code == 1000
    assert await tasks.wait_result(task_id, timeout=5) == 100


async def test_unknown_id_gets_nothing_until_its_stream_starts(
    client: TestClient[Any, Any],
) -> None:
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "aio__later"})
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=0.3)
    await ws.send_json({"ping": 1})
    assert await next_frame(ws) == {"status": "pong"}  # still open
    tasks.async_task(EVENTS, task_publish_id="later", count=3)
    frames = await read_until_closed(ws)
    assert frames[0] == {"status": "start"} and event_data(frames) == items(3)


async def test_resume_after_n_gets_only_what_was_missed(client: TestClient[Any, Any]) -> None:
    task_id = tasks.async_task(EVENTS, task_publish_id="resume", count=30)
    await tasks.wait_result(task_id, timeout=5)
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "aio__resume", "after": 25})
    frames = await read_until_closed(ws)
    assert frames[0] == {"status": "start"}
    assert [f["seq"] for f in frames if f["status"] == "event"] == [26, 27, 28, 29, 30]
    assert frames[-1]["status"] == "stop"


async def test_resume_mid_stream_has_no_gap_and_no_duplicate(client: TestClient[Any, Any]) -> None:
    tasks.async_task(EVENTS, task_publish_id="mid", count=60, pause=0.01)
    first = await client.ws_connect(CHANNEL)
    await first.send_json({"id": "aio__mid"})
    seen: list[dict[str, Any]] = []
    while len([f for f in seen if f["status"] == "event"]) < 10:
        seen.append(await next_frame(first))
    await first.close()
    last = max(f["seq"] for f in seen if f["status"] == "event")
    second = await client.ws_connect(CHANNEL)
    await second.send_json({"id": "aio__mid", "after": last})
    rest = await read_until_closed(second)
    assert event_data(seen) + event_data(rest) == items(60)


async def test_stop_carries_the_final_state_and_error(client: TestClient[Any, Any]) -> None:
    failing = tasks.async_task("tests.support.sample_tasks.events_then_fail", task_publish_id="f")
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "proc__f"})
    frames = await read_until_closed(ws)
    assert event_data(frames) == ["one", "two"]
    assert frames[-1] == {
        "status": "stop",
        "state": "failed",
        "error": "RuntimeError: broken on purpose",
    }
    await tasks.wait_task(failing, timeout=5)

    slow = tasks.async_task(EVENTS, task_publish_id="c", count=100, pause=0.05)
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "aio__c"})
    assert (await next_frame(ws))["status"] == "start"
    tasks.cancel(slow)
    assert (await read_until_closed(ws))[-1] == {
        "status": "stop",
        "state": "cancelled",
        "error": "cancelled",
    }

    timed = tasks.async_task(EVENTS, task_publish_id="t", count=100, pause=0.05, timeout=0.2)
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "aio__t"})
    assert (await read_until_closed(ws))[-1]["state"] == "timed_out"
    await tasks.wait_task(timed, timeout=5)


async def test_pings_are_answered_during_a_long_replay(client: TestClient[Any, Any]) -> None:
    task_id = tasks.async_task(EVENTS, task_publish_id="long", count=5000)
    await tasks.wait_result(task_id, timeout=10)
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "aio__long"})
    await ws.send_json({"ping": 1})
    frames = await read_until_closed(ws)
    statuses = [f["status"] for f in frames]
    assert statuses.index("pong") < statuses.index("stop") - 1000
    assert event_data(frames) == items(5000)


async def test_a_hundred_sockets_on_one_stream_get_every_event(
    client: TestClient[Any, Any],
) -> None:
    sockets = [await client.ws_connect(CHANNEL) for _ in range(100)]
    for ws in sockets:
        await ws.send_json({"id": "aio__crowd"})
    tasks.async_task(EVENTS, task_publish_id="crowd", count=50, pause=0.001)
    results = await asyncio.gather(*(read_until_closed(ws) for ws in sockets))
    assert all(event_data(frames) == items(50) for frames in results)
    assert all(ws.close_code == 1000 for ws in sockets)


async def test_many_streams_at_once(client: TestClient[Any, Any]) -> None:
    sockets = []
    for n in range(20):
        ws = await client.ws_connect(CHANNEL)
        await ws.send_json({"id": f"aio__s{n}"})
        sockets.append(ws)
        tasks.async_task(EVENTS, task_publish_id=f"s{n}", count=n + 1)
    results = await asyncio.gather(*(read_until_closed(ws) for ws in sockets))
    assert [len(event_data(frames)) for frames in results] == list(range(1, 21))


async def test_streams_ending_together_all_close_with_1000_a_few_at_a_time(
    client: TestClient[Any, Any],
) -> None:
    pacer = client.app[SOCKETS].close_pacer = ClosePacer(per_turn=1, in_flight=2)
    sockets = []
    for n in range(30):
        ws = await client.ws_connect(CHANNEL)
        await ws.send_json({"id": f"aio__end{n}"})
        await ws.send_json({"ping": 1})  # the pong: subscribed before the task starts
        assert await next_frame(ws) == {"status": "pong"}
        sockets.append(ws)
    busiest = 0

    async def watch() -> None:
        nonlocal busiest
        while True:
            busiest = max(busiest, pacer.closing_now)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    for n in range(30):
        tasks.async_task(EVENTS, task_publish_id=f"end{n}", count=1)
    results = await asyncio.gather(*(read_until_closed(ws) for ws in sockets))
    watcher.cancel()
    assert [frames[-1] for frames in results] == [{"status": "stop", "state": "success"}] * 30
    assert [ws.close_code for ws in sockets] == [1000] * 30
    assert busiest == 2  # they waited for their turn, two at a time at most
    await eventually(lambda: (pacer.waiting, pacer.closing_now) == (0, 0), what="places given back")


@pytest.mark.parametrize(
    ("send", "code", "reason"),
    [
        (lambda ws: ws.send_str("not json"), 1007, "frame is not JSON"),
        (lambda ws: ws.send_str("[1, 2]"), 1003, "frame must be a JSON object"),
        (lambda ws: ws.send_bytes(b"\x00\x01"), 1003, "binary frames are not accepted"),
        (lambda ws: ws.send_json({"id": 5}), 1003, "id must be a non-empty string"),
        (
            lambda ws: ws.send_json({"id": "x", "after": "3"}),
            1003,
            "after must be a whole number >= 0",
        ),
        (
            lambda ws: ws.send_json({"id": "x", "after": 3, "epoch": 7}),
            1003,
            "epoch must be a short string",
        ),
        (lambda ws: ws.send_str(json.dumps({"ping": "x" * 10_000})), 1009, ""),
    ],
)
async def test_bad_frames_close_only_that_socket(
    client: TestClient[Any, Any],
    caplog: pytest.LogCaptureFixture,
    send: Any,
    code: int,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="taskcast.web.channel")
    good = await client.ws_connect(CHANNEL)
    await good.send_json({"id": "aio__bystander"})
    bad = await client.ws_connect(CHANNEL)
    await send(bad)
    message = await bad.receive(timeout=5)
    assert message.type is WSMsgType.CLOSE
    assert bad.close_code == code
    assert message.extra == reason or code == 1009
    tasks.async_task(EVENTS, task_publish_id="bystander", count=5)
    assert event_data(await read_until_closed(good)) == items(5)
    channel_logs = [r for r in caplog.records if r.name == "taskcast.web.channel"]
    assert len(channel_logs) == 1


async def test_second_subscription_on_one_socket_is_refused(client: TestClient[Any, Any]) -> None:
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "aio__one"})
    await ws.send_json({"id": "aio__two"})
    message = await ws.receive(timeout=5)
    assert message.type is WSMsgType.CLOSE and ws.close_code == 1003
    assert message.extra == "one subscription per socket"


async def test_cross_origin_pages_are_refused(make_client: ClientFactory) -> None:
    client = await make_client(allowed_origins=["https://intranet.example"])
    own = f"http://{client.host}:{client.port}"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(CHANNEL, headers={"Origin": "http://evil.example"})
    assert refused.value.status == 403
    for origin in (own, "https://intranet.example"):
        ws = await client.ws_connect(CHANNEL, headers={"Origin": origin})
        await ws.send_json({"ping": 1})
        assert await next_frame(ws) == {"status": "pong"}
        await ws.close()


async def test_a_stalled_reader_does_not_hold_up_anyone(make_client: ClientFactory) -> None:
    client = await make_client(subscriber_max_pending=500)
    stalled = socket.create_connection((client.host, client.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        f"GET {CHANNEL} HTTP/1.1\r\nHost: {client.host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    payload = json.dumps({"id": "aio__flood"}).encode()
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    stalled.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    try:
        reader = await client.ws_connect(CHANNEL)
        await reader.send_json({"id": "aio__flood"})
        await asyncio.sleep(0.1)  # both subscriptions are in place before the flood
        big = "x" * 8000
        task_id = tasks.async_task(
            "tests.support.sample_tasks.identity_events",
            task_publish_id="flood",
            count=2000,
            text=big,
        )
        frames = await read_until_closed(reader, timeout=20)
        assert len(event_data(frames)) == 2000
        assert await tasks.wait_result(task_id, timeout=10) == 2000
        # 16 MB cannot all fit in the stalled socket's buffers: it is cut off, to resume later.
        deadline = asyncio.get_running_loop().time() + 5
        while len(client.app[SOCKETS]) > 0:
            assert asyncio.get_running_loop().time() < deadline, "the stalled socket was kept"
            await asyncio.sleep(0.05)
    finally:
        stalled.close()


async def test_shutdown_closes_every_socket_with_1001(settings: Any) -> None:
    server = TestServer(create_app(database=settings.database, process_workers=1))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(server.make_url(CHANNEL)) for _ in range(3)]
        await sockets[0].send_json({"id": "aio__never"})
        for ws in sockets:  # a pong proves the server holds the socket
            await ws.send_json({"ping": 1})
            assert await next_frame(ws) == {"status": "pong"}
        assert len(server.app[SOCKETS]) == 3
        await server.close()
        messages = await asyncio.gather(*(ws.receive(timeout=5) for ws in sockets))
        # the close frame each socket received from the server
        assert [(m.type, m.data, m.extra) for m in messages] == [
            (WSMsgType.CLOSE, 1001, "server shutting down")
        ] * 3


async def handshake(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw websocket client that completes the upgrade and then never answers anything."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {CHANNEL} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert (await reader.readline()).startswith(b"HTTP/1.1 101")
    return reader, writer


async def peer_closed_by_server(reader: asyncio.StreamReader) -> tuple[bool, bytes]:
    """Reads what the server sent until it closed the connection: whether it did within 5 s
    (end of file or a reset), and the bytes it sent."""
    received = b""
    try:
        async with asyncio.timeout(5):
            while chunk := await reader.read(4096):
                received += chunk
    except TimeoutError:
        return False, received
    except ConnectionResetError:
        pass
    return True, received


async def test_sockets_opened_together_are_not_pinged_together(
    make_client: ClientFactory,
) -> None:
    """Each socket's heartbeat is between half the setting and the setting, at random: a crowd
    that connected at once (after a restart) is pinged over a span, not in one turn."""
    heartbeat = 0.4
    client = await make_client(channel_heartbeat=heartbeat)
    loop = asyncio.get_running_loop()
    sockets, connected = [], []
    for _ in range(20):
        sockets.append(await client.ws_connect(CHANNEL, autoping=False))
        connected.append(loop.time())

    async def first_ping(ws: aiohttp.ClientWebSocketResponse) -> float:
        message = await ws.receive(timeout=5)
        assert message.type is WSMsgType.PING
        return loop.time()

    try:
        pinged = await asyncio.gather(*(first_ping(ws) for ws in sockets))
    finally:
        for ws in sockets:
            await ws.close()
    delays = [ping - opened for ping, opened in zip(pinged, connected, strict=True)]
    assert max(delays) <= heartbeat + 0.1, "a socket waited longer than the heartbeat setting"
    assert min(delays) >= heartbeat / 2 - 0.05
    # 20 draws over 0.2 s all within 0.08 s of each other: about one chance in 10^7.
    assert max(delays) - min(delays) >= 0.08, f"the pings came together: {sorted(delays)}"


async def test_heartbeat_drops_a_peer_that_vanished(make_client: ClientFactory) -> None:
    client = await make_client(channel_heartbeat=0.2)
    peer_reader, peer = await handshake(client.host, client.port)
    try:
        alive = await client.ws_connect(CHANNEL)  # aiohttp's client answers pings itself
        await alive.send_json({"ping": 1})
        assert await next_frame(alive) == {"status": "pong"}
        assert len(client.app[SOCKETS]) == 2
        async with asyncio.timeout(5):
            while len(client.app[SOCKETS]) > 1:
                # reading keeps the live client answering the server's pings
                await alive.send_json({"ping": 1})
                assert await next_frame(alive) == {"status": "pong"}
                await asyncio.sleep(0.05)
        closed, received = await peer_closed_by_server(peer_reader)
        assert closed, "the server kept the connection of a peer that answers no ping"
        assert b"\x89" in received, "the server never pinged it: the heartbeat did not drop it"
    finally:
        peer.close()
        await peer.wait_closed()


class RecordingTransport(asyncio.Transport):
    """An open transport with an empty buffer that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))


async def test_a_closing_socket_takes_no_more_direct_writes() -> None:
    # aiohttp also closes a socket from inside its read (the peer's close frame, a bad frame):
    # the sink must let go before the close frame is written, or event frames would follow it.
    transport = RecordingTransport()
    ws = ChannelSocket()
    sink = SocketSink(ws, transport)
    subscription = Subscription("s", 0, 10, sink)
    event = StreamEvent(1, '"a"')
    assert sink.write([event])
    assert not SocketSink.write_each({subscription: sink}, [event])
    assert len(transport.written) == 2
    with pytest.raises(RuntimeError):  # never prepared: aiohttp refuses after the sink let go
        await ws.close()
    assert not sink.write([event])
    assert list(SocketSink.write_each({subscription: sink}, [event])) == [subscription]
    assert len(transport.written) == 2
