"""Websocket framing (RFC 6455) of server-to-client text frames, without a library.

The hub frames each event once, so that a subscriber waiting for events can be handed the bytes
directly, however many subscribers there are.
"""

from __future__ import annotations

import struct

# The headers of the short frames most events are, built once.
_SHORT_HEADERS = tuple(bytes((0x81, size)) for size in range(126))


def text_frame(payload: bytes) -> bytes:
    """UTF-8 `payload` as one unmasked, final websocket text frame, as a server sends it."""
    size = len(payload)
    if size < 126:
        return _SHORT_HEADERS[size] + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload
