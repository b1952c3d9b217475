"""Request guards of the canvas host: Host allow-list, cross-site refusal, path containment.

The host binds to loopback by default, so the attacker to keep out is a web page in the user's own
browser: a cross-site request (``Sec-Fetch-Site: cross-site``), a foreign ``Origin``, or a DNS-rebinding
page whose ``Host`` is the attacker's name. Every request, the websocket upgrade included, passes
:func:`origin_guard_middleware`. File routes resolve every user-supplied path with
:func:`contained_path`, which refuses ``..``, absolute paths, encoded separators and symlinks that
lead out of the folder.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..pipelines.paths import PathRefused, contained_path, relative_posix

__all__ = ["PathRefused", "contained_path", "relative_posix"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def split_host_port(value: str | None) -> tuple[str, str | None]:
    """Split a ``Host``/``Origin`` authority into (lower-case host, port or None); brackets dropped."""
    value = (value or "").strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        host, rest = value[1:end], value[end + 1 :]
        port = rest[1:] if rest.startswith(":") else None
        return host, (port or None)
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, (port or None)
    return value, None


def is_loopback_name(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_allowed_hosts(names: Any) -> frozenset:
    """The Host allow-list: loopback names plus configured names, lower-case, without brackets/ports."""
    allowed = set(LOOPBACK_NAMES)
    for name in names or ():
        host, _ = split_host_port(str(name))
        if host:
            allowed.add(host)
    return frozenset(allowed)


def refusal_reason(headers: Any, allowed_hosts: frozenset) -> str | None:
    """Why a request must be refused (a short text), or None when it may pass."""
    host_header = headers.get("Host")
    if not host_header:
        return "missing Host header"
    host, host_port = split_host_port(host_header)
    if host not in allowed_hosts:
        return f"Host {host!r} is not allowed (DNS rebinding guard)"
    if headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return "cross-site request"
    origin = headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        origin_host, origin_port = split_host_port(parts.netloc)
        if not origin_host or origin_host != host:
            return f"Origin {origin!r} does not match Host {host_header!r}"
        # A missing port is the scheme's default (the Host of this plain-HTTP server: 80), so
        # "http://127.0.0.1" does not match a server on 127.0.0.1:8188.
        default_port = DEFAULT_PORTS.get(parts.scheme.lower())
        if (origin_port or default_port) != (host_port or DEFAULT_PORTS["http"]):
            return f"Origin {origin!r} does not match Host {host_header!r}"
    return None


def origin_guard_middleware(allowed_hosts: frozenset) -> Any:
    """aiohttp middleware that answers 403 to foreign Host, cross-site and foreign-Origin requests."""

    @web.middleware
    async def guard(request, handler):
        """Refuse the request with 403 or pass it on."""
        reason = refusal_reason(request.headers, allowed_hosts)
        if reason is not None:
            return web.Response(status=403, text=f"Forbidden: {reason}")
        return await handler(request)

    return guard


DANGEROUS_TYPES = (
    "text/html",
    "text/javascript",
    "application/javascript",
    "text/css",
    "image/svg+xml",
    "application/xhtml+xml",
)


def is_dangerous_content_type(content_type: str | None) -> bool:
    """Types a browser would execute or render as a document when served inline from our origin."""
    content_type = (content_type or "").lower()
    return content_type in DANGEROUS_TYPES or "xml" in content_type or "javascript" in content_type
