"""Tests of the channel socket's sink on real sockets: frames sent on the socket itself while
its transport holds nothing, and through the transport otherwise, arrive whole and in order."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from taskcast.hub.hub import StreamEvent, Subscription
from taskcast.web import wire
from taskcast.web.socket_sink import DIRECT_BUFFER_LIMIT, ChannelSocket, SocketSink, plain_socket_fd


class Connected:
    """A transport of this loop connected to a peer socket this test reads (or not) itself."""

    def __init__(self, transport: asyncio.Transport, peer: socket.socket) -> None:
        self.transport = transport
        self.peer = peer

    def read_all(self, expected: int) -> bytes:
        """Read from the peer until `expected` bytes came (or it times out)."""
        self.peer.settimeout(5)
        received = bytearray()
        while len(received) < expected:
            chunk = self.peer.recv(1 << 20)
            if not chunk:
                break
            received += chunk
        return bytes(received)


@pytest.fixture
async def connected() -> AsyncIterator[Connected]:
    listener = socket.create_server(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(
        asyncio.Protocol, "127.0.0.1", listener.getsockname()[1]
    )
    peer, _ = listener.accept()
    listener.close()
    # Small kernel buffers, so that a few frames fill them.
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:
        yield Connected(transport, peer)
    finally:
        transport.abort()
        peer.close()
        await asyncio.sleep(0)


def events(first: int, count: int, size: int) -> list[StreamEvent]:
    return [StreamEvent(seq, '"' + "x" * size + '"') for seq in range(first, first + count)]


def frame_seqs(data: bytes) -> list[int]:
    """The seq of each event frame in a server's byte stream, checking each frame is whole."""
    seqs, at = [], 0
    while at < len(data):
        assert data[at] == 0x81, f"a frame begins at {at}"
        size = data[at + 1]
        at += 2
        if size == 126:
            (size,) = struct.unpack_from("!H", data, at)
            at += 2
        payload = data[at : at + size]
        assert len(payload) == size, "a frame was cut short"
        seqs.append(int(payload.rsplit(b'"seq":', 1)[1].rstrip(b"}")))
        at += size
    return seqs


async def test_a_plain_transport_of_this_loop_is_written_on_its_socket(
    connected: Connected,
) -> None:
    fd = plain_socket_fd(connected.transport)
    assert fd == connected.transport.get_extra_info("socket").fileno()

    class NotPlain(asyncio.Transport):
        pass

    assert plain_socket_fd(NotPlain()) == -1  # TLS, another loop's, a test's: through it
    assert plain_socket_fd(None) == -1


async def test_frames_beyond_what_the_socket_takes_queue_in_the_transport_in_order(
    connected: Connected,
) -> None:
    sink = SocketSink(ChannelSocket(), connected.transport)
    subscription = Subscription("s", 0, 10, sink)
    sent: list[int] = []
    refused_at = None
    for event in events(1, 400, 1000):
        if SocketSink.write_each({subscription: sink}, [event]):
            refused_at = event.seq
            break
        sent.append(event.seq)
    # The peer reads nothing: the socket filled, the rest queued in the transport up to its
    # limit, and the next frame was refused (the hub queues it for the sender).
    assert refused_at is not None
    buffered = connected.transport.get_write_buffer_size()
    assert 0 < buffered <= DIRECT_BUFFER_LIMIT + 1100
    assert not sink.write(events(refused_at, 1, 1000))
    expected = sum(len(wire.event_wire(events(seq, 1, 1000))) for seq in sent)
    reading = asyncio.get_running_loop().run_in_executor(None, connected.read_all, expected)
    assert frame_seqs(await asyncio.wait_for(reading, 10)) == sent


async def test_a_socket_the_peer_reset_fails_through_its_transport_without_raising(
    connected: Connected,
) -> None:
    sink = SocketSink(ChannelSocket(), connected.transport)
    subscription = Subscription("s", 0, 10, sink)
    connected.transport.pause_reading()  # so only a write can find out
    connected.peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connected.peer.close()  # a reset, not a close handshake
    await asyncio.sleep(0.05)
    assert not connected.transport.is_closing()
    for event in events(1, 5, 10):
        SocketSink.write_each({subscription: sink}, [event])
        await asyncio.sleep(0)
    # The transport met the error on its own write and closed, as with any write of its own.
    assert connected.transport.is_closing()
    assert list(SocketSink.write_each({subscription: sink}, events(6, 1, 10))) == [subscription]
