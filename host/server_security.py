"""Request guards of the canvas host: Host allow-list, cross-site refusal, path containment.

The host binds to loopback by default, so the attacker to keep out is a web page in the user's own
browser: a cross-site request (``Sec-Fetch-Site: cross-site``), a foreign ``Origin``, or a DNS-rebinding
page whose ``Host`` is the attacker's name. Every request, the websocket upgrade included, passes
:func:`origin_guard_middleware`. File routes resolve every user-supplied path with
:func:`contained_path`, which refuses ``..``, absolute paths, encoded separators and symlinks that
lead out of the folder.
"""
import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class PathRefused(Exception):
    """A user-supplied path would leave its folder, or is malformed."""


def split_host_port(value):
    """Split a ``Host``/``Origin`` authority into (lower-case host, port or None); brackets dropped."""
    value = (value or "").strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        host, rest = value[1:end], value[end + 1:]
        port = rest[1:] if rest.startswith(":") else None
        return host, (port or None)
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, (port or None)
    return value, None


def is_loopback_name(host):
    """True for ``localhost`` and loopback IP literals."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_allowed_hosts(names):
    """The Host allow-list: loopback names plus configured names, lower-case, without brackets/ports."""
    allowed = set(LOOPBACK_NAMES)
    for name in names or ():
        host, _ = split_host_port(str(name))
        if host:
            allowed.add(host)
    return frozenset(allowed)


def refusal_reason(headers, allowed_hosts):
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
        if host_port and origin_port and host_port != origin_port:
            return f"Origin {origin!r} does not match Host {host_header!r}"
    return None


def origin_guard_middleware(allowed_hosts):
    """aiohttp middleware that answers 403 to foreign Host, cross-site and foreign-Origin requests."""

    @web.middleware
    async def guard(request, handler):
        """Refuse the request with 403 or pass it on."""
        reason = refusal_reason(request.headers, allowed_hosts)
        if reason is not None:
            return web.Response(status=403, text=f"Forbidden: {reason}")
        return await handler(request)

    return guard


def _is_within(path, base):
    """True when ``path`` equals ``base`` or lies under it (both already resolved)."""
    return path == base or base in path.parents


def contained_path(base, *parts):
    """Resolve ``parts`` (user-supplied, '/'-separated) inside ``base``; raise PathRefused otherwise.

    Refused: NUL bytes, backslashes, absolute paths, ``..`` segments and anything whose real path
    (symlinks followed) leaves ``base``. Callers decode percent-escapes before calling.
    """
    base_real = Path(os.path.realpath(base))
    relative = []
    for part in parts:
        if part is None or part == "":
            continue
        if "\x00" in part or "\\" in part:
            raise PathRefused(f"malformed path {part!r}")
        if part.startswith("/") or Path(part).is_absolute() or (len(part) > 1 and part[1] == ":"):
            raise PathRefused(f"absolute path {part!r}")
        segments = [s for s in part.split("/") if s not in ("", ".")]
        if any(s == ".." for s in segments):
            raise PathRefused(f"path {part!r} goes up a folder")
        relative += segments
    candidate = Path(os.path.realpath(base_real.joinpath(*relative)))
    if not _is_within(candidate, base_real):
        raise PathRefused("path leaves its folder")
    return candidate


def relative_posix(path, base):
    """``path`` relative to ``base`` (real paths) with '/' separators."""
    return Path(os.path.realpath(path)).relative_to(Path(os.path.realpath(base))).as_posix()


DANGEROUS_TYPES = ("text/html", "text/javascript", "application/javascript", "text/css", "image/svg+xml",
                   "application/xhtml+xml")


def is_dangerous_content_type(content_type):
    """Types a browser would execute or render as a document when served inline from our origin."""
    content_type = (content_type or "").lower()
    return content_type in DANGEROUS_TYPES or "xml" in content_type or "javascript" in content_type
