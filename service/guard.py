"""Requests a browser sends on behalf of some other web site are refused.

Without a token the service trusts whoever reaches 127.0.0.1, and every web page the user opens
can reach it: a form or ``fetch(..., {mode: "no-cors"})`` POSTs to it as a "simple" request (no
CORS preflight), and DNS rebinding makes an attacker's host name resolve to 127.0.0.1 so that even
reads look same-origin. So, with or without a token:
- the Host header must name a host this service answers to (``Settings.trusted_hosts``): a
  rebinding page's requests carry the attacker's name;
- a write (any method but GET/HEAD/OPTIONS) is refused when the browser says it comes from another
  site (``Sec-Fetch-Site``) or names an Origin other than the service's own;
- ``POST /api/import`` needs ``Content-Type: application/octet-stream`` (service.api.sync), a type
  a page can only send after a preflight that this service never approves.
Command-line clients (curl, httpx, NNI) send neither Origin nor Sec-Fetch-Site and are unaffected.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(host_header: str) -> str:
    """The host of a Host header without its port, lower case, IPv6 brackets removed."""
    try:
        return (urlsplit(f"//{host_header}").hostname or "").lower()
    except ValueError:  # e.g. an unbalanced '[' in the header
        return ""


class BrowserGuard:
    def __init__(self, app: ASGIApp, trusted_hosts: set[str]) -> None:
        self.app = app
        self.trusted_hosts = trusted_hosts  # empty: any host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if self.trusted_hosts and host_name(host) not in self.trusted_hosts:
            await _refuse(send, 421, f"this service does not answer to host {host[:100]!r}: "
                          f"allowed {sorted(self.trusted_hosts)} (add a name with "
                          "NSR_ALLOWED_HOSTS)")  # fmt: skip
            return
        if scope["method"] not in SAFE_METHODS:
            site = headers.get("sec-fetch-site")
            if site is not None and site not in ("same-origin", "none"):
                await _refuse(send, 403, f"cross-site write refused (Sec-Fetch-Site: {site[:30]}):"
                              " writes come from the service's own pages or from a command-line"
                              " client")  # fmt: skip
                return
            origin = headers.get("origin")
            if origin is not None and not _same_origin(origin, host, scope):
                await _refuse(send, 403, f"cross-origin write refused (Origin: {origin[:100]}): "
                              "writes come from the service's own pages or from a command-line "
                              "client")  # fmt: skip
                return
        await self.app(scope, receive, send)


def _same_origin(origin: str, host: str, scope: Scope) -> bool:
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False  # "null" (sandboxed frames, file:// pages) included
    default = 443 if parts.scheme == "https" else 80
    expected_scheme = scope.get("scheme", "http")
    try:
        host_parts = urlsplit(f"//{host}")
        host_port = host_parts.port or (443 if expected_scheme == "https" else 80)
    except ValueError:
        return False
    return (
        parts.scheme == expected_scheme
        and parts.hostname.lower() == (host_parts.hostname or "").lower()
        and (port or default) == host_port
    )


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
