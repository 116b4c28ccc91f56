"""What a client may send on the task-events channel (contract section B): its frames parsed
and checked, and the error that closes the socket with a code and a reason when one is wrong."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSCloseCode, web

from taskcast.web.keys import POLICY, RUNNER


class ProtocolError(Exception):
    """A client's frame breaks the protocol: the socket closes with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def parse_frame(text: str) -> dict[str, Any]:
    """A text frame as the JSON object the protocol asks for."""
    try:
        frame = json.loads(text)
    except ValueError:
        raise ProtocolError(WSCloseCode.INVALID_TEXT, "frame is not JSON") from None
    except RecursionError:  # JSON nested deeper than the parser goes: still a bad frame
        raise ProtocolError(WSCloseCode.INVALID_TEXT, "frame is nested too deeply") from None
    if not isinstance(frame, dict):
        raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "frame must be a JSON object")
    return frame


def subscription_request(frame: dict[str, Any]) -> tuple[str, int]:
    """The stream id and the seq to resume after, of a subscribe frame."""
    stream_id, after = frame["id"], frame.get("after", 0)
    if not isinstance(stream_id, str) or not stream_id:
        raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "id must be a non-empty string")
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "after must be a whole number >= 0")
    return stream_id, after


def epoch_request(frame: dict[str, Any]) -> str | None:
    """The epoch a resuming client saw (the Redis engine's extension; docs/element.md)."""
    epoch = frame.get("epoch")
    if epoch is not None and (not isinstance(epoch, str) or not epoch or len(epoch) > 64):
        raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "epoch must be a short string")
    return epoch


def run_request(
    request: web.Request, user: str | None, stream_id: str, frame: dict[str, Any]
) -> str:
    """The run named by a subscribe frame's `run` field (Taskcast's extension): a task id of
    this stream that this user may see."""
    run_id = frame["run"]
    if not isinstance(run_id, str) or not run_id:
        raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "run must be a non-empty string")
    record = request.app[RUNNER].get(run_id)
    if record is None or not request.app[POLICY].can_see(user, record):
        raise ProtocolError(WSCloseCode.POLICY_VIOLATION, "no such run")
    if record.stream_id != stream_id:
        raise ProtocolError(WSCloseCode.UNSUPPORTED_DATA, "run is not a run of this stream")
    return run_id
