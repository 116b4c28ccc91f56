"""Which `Host` names the server answers to, against DNS rebinding.

A page on evil.example whose name is made to resolve to 127.0.0.1 reaches a loopback server as
its own origin, so an Origin check alone lets it through; its requests still carry
`Host: evil.example`. The server answers only to loopback names, to address literals (a
rebinding needs a name that resolves, which an address is not) and to the names configured in
`Settings.allowed_hosts`; `"*"` there turns the check off.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

#: every loopback server answers to these, whatever `allowed_hosts` says
LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})
#: in `allowed_hosts`: answer to any name (behind a proxy that checks names, say)
ANY_HOST: Final = "*"


def host_name(header: str) -> str | None:
    """The name in a `Host` value, lower case, without its port or final dot; None when the
    value is not a well-formed host (non-ASCII, spaces, a bad port, an unbracketed IPv6)."""
    if not header.isascii() or not header.isprintable() or " " in header:
        return None
    header = header.lower()
    if header.startswith("["):
        name, bracket, port = header[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return None
        port = port[1:]
    else:
        name, _, port = header.partition(":")
    if port and not (port.isdigit() and len(port) <= 5):
        return None
    name = name.removesuffix(".")
    return name or None


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def normalise(names: Iterable[str]) -> frozenset[str]:
    """`allowed_hosts` as names to compare with `host_name`'s: lower case, ports dropped."""
    out = set()
    for name in names:
        if name == ANY_HOST:
            out.add(ANY_HOST)
            continue
        parsed = host_name(name)
        if parsed is None:
            raise ValueError(f"allowed_hosts: {name!r} is not a host name")
        out.add(parsed)
    return frozenset(out)


def host_answered(header: str | None, allowed: frozenset[str]) -> bool:
    """Does the server answer to this `Host` value, given `normalise(allowed_hosts)`?"""
    if ANY_HOST in allowed or header is None:
        # No Host at all is an HTTP/1.0 tool: every browser sends one, so it is no rebinding.
        return True
    name = host_name(header)
    if name is None:
        return False
    return name in LOOPBACK_NAMES or is_address(name) or name in allowed
