"""Websocket framing (RFC 6455) of server-to-client text frames, without a library.

The hub frames each event once, so that a subscriber waiting for events can be handed the bytes
directly, however many subscribers there are.
"""

from __future__ import annotations

import struct


def text_frame(text: str) -> bytes:
    """`text` as one unmasked, final websocket text frame, as a server sends it."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload
