"""Any value as JSON: what a task's event becomes when it is not a JSON value already."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import uuid
from typing import Any


def as_json(value: object, seen: frozenset[int] = frozenset()) -> Any:
    """`value` made JSON: dates in ISO format and decimals, UUIDs and enums as text (as Django's
    JSON encoder writes them), bytes decoded as UTF-8, NaN and infinities by their JavaScript
    names, sets and tuples as lists, mapping keys as text, anything else (a cycle too) as str()."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, enum.Enum):
        return as_json(value.value, seen)
    if isinstance(value, decimal.Decimal | uuid.UUID | datetime.timedelta):
        return str(value)
    if id(value) in seen:
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return as_json(dataclasses.asdict(value), seen | {id(value)})
    if isinstance(value, dict | list | tuple | set | frozenset):
        seen = seen | {id(value)}
        if isinstance(value, dict):
            return {_key(k): as_json(v, seen) for k, v in value.items()}
        return [as_json(item, seen) for item in value]
    return str(value)


def _key(key: object) -> str:
    text = as_json(key)
    return text if isinstance(text, str) else json.dumps(text)
