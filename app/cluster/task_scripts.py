"""The task plane's atomic steps, as Lua scripts run inside Redis.

Each step reads and writes several keys that other nodes change at the same time (a task's
hash, its queue entry, its stream id's holder): a script runs alone in Redis, so no node sees
half of one, and there is no round trip between its read and its write, as a WATCH/MULTI
retry loop would have. The scripts touch keys of different hash slots, so the engine needs one
Redis (with replicas if wanted), not a Redis Cluster.
"""

from __future__ import annotations

# Given to every script that writes a task's hash or a change (SUBMIT, UPDATE, RECOVER) by
# whichever module calls it: kept beside the scripts, so each caller passes the same value.

#: seconds a task's hash (and its stream id's claim) lives after its last change
RECORD_TTL = 7 * 24 * 3600
#: about how many entries the stream of changes keeps (a node that starts reads them first)
CHANGES_KEPT = 10_000

#: Submit a task. KEYS: task hash, queue, changes, stream holder.
#: ARGV: task id, record, spec, ttl ms, has stream ("1"/"0"), node id, changes kept.
#: Returns {1, entry id}, or {0, the task holding the stream id}.
SUBMIT = """
if ARGV[5] == '1' then
  local holder = redis.call('GET', KEYS[4])
  if holder then return {0, holder} end
  redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[4])
end
local entry = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'spec', ARGV[3], 'status', 'queued',
           'entry', entry, 'by', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*',
           'id', ARGV[1], 'node', ARGV[6], 'record', ARGV[2])
return {1, entry}
"""

#: A node takes a task it read from a queue. KEYS: task hash, the node's task set.
#: ARGV: node id, task id. Returns {'ok', record, spec}, or {'gone'} (expired), {'cancelled'},
#: {'taken'} (another node has it: a redelivered entry).
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
if redis.call('HGET', KEYS[1], 'cancel') then return {'cancelled'} end
if redis.call('HSETNX', KEYS[1], 'owner', ARGV[1]) == 0 then return {'taken'} end
redis.call('SADD', KEYS[2], ARGV[2])
return {'ok', redis.call('HGET', KEYS[1], 'record'), redis.call('HGET', KEYS[1], 'spec')}
"""

#: Cancel a task wherever it is. KEYS: task hash.
#: Returns {'queued', record, entry} (nobody has taken it: now it never runs),
#: {'owner', node id} (that node must stop it), {'final', status} or {'gone'}.
CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return {'final', status} end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then return {'owner', owner} end
redis.call('HSET', KEYS[1], 'cancel', '1')
return {'queued', redis.call('HGET', KEYS[1], 'record'), redis.call('HGET', KEYS[1], 'entry')}
"""

#: A change of a task's record. KEYS: task hash, changes, queue, the owner's task set,
#: stream holder. ARGV: task id, record, status, ttl ms, node id, changes kept, final ("1"/"0"),
#: queue entry (or ""), has stream ("1"/"0"), consumer group.
#: A final change also acknowledges and deletes the queue entry, forgets the task in its
#: owner's set and releases the stream id if this task still holds it (compare and delete).
UPDATE = """
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'status', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*',
           'id', ARGV[1], 'node', ARGV[5], 'record', ARGV[2])
if ARGV[7] == '1' then
  if ARGV[8] ~= '' then
    redis.call('XACK', KEYS[3], ARGV[10], ARGV[8])
    redis.call('XDEL', KEYS[3], ARGV[8])
  end
  redis.call('SREM', KEYS[4], ARGV[1])
  if ARGV[9] == '1' and redis.call('GET', KEYS[5]) == ARGV[1] then
    redis.call('DEL', KEYS[5])
  end
end
return 1
"""

#: Take back a task from a node that died. KEYS: task hash, its queue, the dead node's task set,
#: changes, stream holder. ARGV: task id, expected owner ('' for none), expected record, new
#: record ('' to keep it), new status, 'requeue' or 'end', ttl ms, writer node id, changes
#: kept, consumer group, has stream ("1"/"0").
#: Compare and set: unless the hash still has the owner and record the caller decided on, it
#: returns {'changed'} and changes nothing. Otherwise the old queue entry is acknowledged and
#: deleted, the new record (if any) written like UPDATE writes one, the task left out of the
#: dead node's set, and then either the task queued again with no owner ('requeue': a new
#: entry, so a live node takes it) or, for an end, the stream id released if the task holds
#: it. Returns {'done', new entry or ''}, or {'gone'} when the hash has expired.
RECOVER = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[1])
  return {'gone'}
end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
if owner ~= ARGV[2] or redis.call('HGET', KEYS[1], 'record') ~= ARGV[3] then
  return {'changed'}
end
local entry = redis.call('HGET', KEYS[1], 'entry')
if entry then
  redis.call('XACK', KEYS[2], ARGV[10], entry)
  redis.call('XDEL', KEYS[2], entry)
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'record', ARGV[4], 'status', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[9], '*',
             'id', ARGV[1], 'node', ARGV[8], 'record', ARGV[4])
end
redis.call('SREM', KEYS[3], ARGV[1])
if ARGV[6] == 'requeue' then
  redis.call('HDEL', KEYS[1], 'owner')
  local fresh = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
  redis.call('HSET', KEYS[1], 'entry', fresh)
  return {'done', fresh}
end
if ARGV[11] == '1' and redis.call('GET', KEYS[5]) == ARGV[1] then
  redis.call('DEL', KEYS[5])
end
return {'done', ''}
"""

#: The recovery lock: take it if free, renew it if this node holds it. KEYS: the lock.
#: ARGV: node id, ttl ms. Returns 1 when this node holds it now, else 0.
HOLD_LOCK = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

#: Let the recovery lock go if this node holds it. KEYS: the lock. ARGV: node id.
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
