"""Which URLs a caller may make the gateway call (callbacks, DLR URLs, webhooks): pure.

``webhooks.allowed_hosts`` entries are a host name or address (any port), or a host
with a pinned port: ``crm.lan:8000``, ``[2001:db8::1]:8443``. A URL is allowed when
its scheme is http(s) and an entry names its host (case-insensitive) and, if the
entry pins one, its port (the scheme's default port when the URL gives none).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

_ENTRY_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]/\s]+))(?::(?P<port>\d{1,5}))?$")


def parse_entry(entry: str) -> tuple[str, int | None] | None:
    """(host, pinned port or None) of an allowed_hosts entry; None if malformed."""
    if ":" in entry and not entry.startswith("[") and entry.count(":") > 1:
        return entry.lower(), None  # a bare IPv6 address: any port
    m = _ENTRY_RE.match(entry)
    if m is None:
        return None
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        return None
    return (m["v6"] or m["host"]).lower(), port


def target(url: str) -> tuple[str, int] | None:
    """(host, port) an http(s) URL points at; None if it is not a usable http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def host_allowed(url: str, allowed_hosts: Iterable[str]) -> bool:
    where = target(url)
    if where is None:
        return False
    host, port = where
    for entry in allowed_hosts:
        parsed = parse_entry(entry)
        if parsed is not None and parsed[0] == host and parsed[1] in (None, port):
            return True
    return False


__all__ = ["host_allowed", "parse_entry", "target"]
