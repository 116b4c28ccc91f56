"""What changes a stream in Redis: three Lua scripts (open a run, append events, end a run) and
the pub/sub messages they send, parsed here for the mirrors.

Each script checks the stream's meta, writes its events and meta, and publishes to its channel
in one atomic step, so a mirror that reads the meta and the events never sees one without the
other, and a message on the channel always describes what is already stored.

Messages (bytes, the event texts verbatim, never re-encoded):
  b"s <epoch> <run>"                                  a run opened (or was re-seeded)
  b"e <epoch> <first seq> <len>,<len>,...\\n<texts>"   consecutive events, texts end to end
  b"x <epoch> <last seq> <state>\\n<error>"            the run ended
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Final

#: KEYS meta, events, live; ARGV run, epoch, node. A new run (or a re-seed) starts over.
OPEN_SCRIPT: Final = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'run', ARGV[1], 'epoch', ARGV[2], 'node', ARGV[3],
           'state', 'running', 'error', '', 'last', '0')
redis.call('PUBLISH', KEYS[3], 's ' .. ARGV[2] .. ' ' .. ARGV[1])
return 1
"""

#: KEYS meta, events, live; ARGV epoch, maxlen, first seq, texts... Returns 1, or 0 when the
#: meta is gone (Redis lost the stream: re-seed), or -1 when another run owns the stream now.
APPEND_SCRIPT: Final = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch ~= ARGV[1] then
  if not epoch then return 0 end
  return -1
end
local seq = tonumber(ARGV[3])
local lens = {}
for i = 4, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], string.format('%d-0', seq), 'd', ARGV[i])
  lens[#lens + 1] = #ARGV[i]
  seq = seq + 1
end
redis.call('HSET', KEYS[1], 'last', string.format('%d', seq - 1))
redis.call('PUBLISH', KEYS[3], 'e ' .. ARGV[1] .. ' ' .. ARGV[3] .. ' ' ..
           table.concat(lens, ',') .. '\\n' .. table.concat(ARGV, '', 4))
return 1
"""

#: KEYS meta, events, live; ARGV epoch ('' for the current one), state, error, last seq ('' for
#: the meta's), expiry seconds. Returns 1, 0 when there is no such stream, -1 when another run
#: owns it, -2 when it had ended already.
END_SCRIPT: Final = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return 0 end
if ARGV[1] ~= '' and epoch ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return -2 end
local last = ARGV[4]
if last == '' then last = redis.call('HGET', KEYS[1], 'last') end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'error', ARGV[3], 'last', last)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('PUBLISH', KEYS[3], 'x ' .. epoch .. ' ' .. last .. ' ' .. ARGV[2] .. '\\n' .. ARGV[3])
return 1
"""


def new_epoch() -> str:
    """A fresh epoch: it names one copy of a run's history in Redis."""
    return uuid.uuid4().hex[:16]


@dataclasses.dataclass(frozen=True, slots=True)
class Opened:
    epoch: str
    run_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Appended:
    epoch: str
    first_seq: int
    texts: list[str]


@dataclasses.dataclass(frozen=True, slots=True)
class Ended:
    epoch: str
    last_seq: int
    state: str
    error: str | None


Message = Opened | Appended | Ended


def parse_message(data: bytes) -> Message:
    """A channel message (ValueError when it is not one of the three)."""
    kind = data[:2]
    if kind == b"s ":
        epoch, run_id = data[2:].decode().split(" ", 1)
        return Opened(epoch, run_id)
    head, _, body = data.partition(b"\n")
    if kind == b"e ":
        epoch, first, lengths = head[2:].decode().split(" ", 2)
        texts, start = [], 0
        for length in map(int, lengths.split(",")):
            texts.append(body[start : start + length].decode())
            start += length
        return Appended(epoch, int(first), texts)
    if kind == b"x ":
        epoch, last, state = head[2:].decode().split(" ", 2)
        return Ended(epoch, int(last), state, body.decode() or None)
    raise ValueError(f"not a stream message: {data[:40]!r}")
