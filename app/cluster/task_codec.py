"""A task as it travels between nodes: its spec and its record, pickled.

The nodes of a cluster run the same code, so pickles are the shortest faithful form of both; a
task's function and hook travel as dotted paths and are imported again on the node that runs
it (every node must be able to import them). The arguments are pickled once, at submit.
"""

from __future__ import annotations

import pickle
from typing import Any

from taskcast.errors import TaskSpecError
from taskcast.functions import import_callable
from taskcast.records import TaskRecord
from taskcast.spec import ProcessCall, TaskSpec
from taskcast.store.rows import PROTOCOL

__all__ = ["decode_record", "decode_spec", "encode_record", "encode_spec"]

#: the options of a spec that travel as they are
_OPTIONS = (
    "func_path",
    "kind",
    "group",
    "stream_id",
    "task_name",
    "hook_path",
    "timeout",
    "save",
    "max_attempts",
    "retry_delay",
    "schedule",
    "started_by",
)


def encode_spec(spec: TaskSpec) -> bytes:
    """The spec's call and options, pickled; TaskSpecError if its arguments do not pickle."""
    fields: dict[str, Any] = {name: getattr(spec, name) for name in _OPTIONS}
    if spec.call is not None:
        # A process task's call is pickled already, as its worker will receive it.
        fields["call"] = (spec.call.reference, spec.call.args, spec.call.kwargs)
    else:
        try:
            fields["arguments"] = pickle.dumps((spec.args, spec.kwargs), protocol=PROTOCOL)
        except Exception as exc:
            raise TaskSpecError(
                f"on the Redis engine a task's arguments must pickle, and {spec.func_path}'s "
                f"do not ({exc}): pass plain data"
            ) from exc
    return pickle.dumps(fields, protocol=PROTOCOL)


def decode_spec(data: bytes) -> TaskSpec:
    """The spec again, its function and hook imported here; TaskSpecError if they are not."""
    fields: dict[str, Any] = pickle.loads(data)
    call_parts = fields.pop("call", None)
    arguments = fields.pop("arguments", None)
    call = ProcessCall(*call_parts) if call_parts is not None else None
    if call is not None:
        args, kwargs = pickle.loads(call.args), pickle.loads(call.kwargs)
    else:
        args, kwargs = pickle.loads(arguments)
    func = import_callable(fields["func_path"])
    hook_path = fields["hook_path"]
    hook = import_callable(hook_path) if hook_path else None
    return TaskSpec(func=func, args=args, kwargs=kwargs, hook=hook, call=call, **fields)


def encode_record(record: TaskRecord) -> bytes:
    """The record pickled; a result or arguments that do not pickle travel as their repr (the
    store keeps them the same way)."""
    try:
        return pickle.dumps(record, protocol=PROTOCOL)
    except Exception:
        plain = record.replace(
            args=tuple(repr(arg) for arg in record.args),
            kwargs={name: repr(value) for name, value in record.kwargs.items()},
            result=None if record.result is None else repr(record.result),
        )
        return pickle.dumps(plain, protocol=PROTOCOL)


def decode_record(data: bytes) -> TaskRecord:
    record = pickle.loads(data)
    if not isinstance(record, TaskRecord):
        raise TypeError(f"not a task record: {type(record).__name__}")
    return record


def max_attempts_of(spec_data: bytes) -> int:
    """How many attempts a queued spec allows, read without importing its function (a node
    that recovers a task need not be able to run it)."""
    fields: dict[str, Any] = pickle.loads(spec_data)
    attempts = fields.get("max_attempts", 1)
    return attempts if isinstance(attempts, int) else 1
