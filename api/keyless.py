"""Who may read ``/metrics`` and the API docs without an API key: the setting ``keyless_ops``.

``loopback`` (the default): clients on this host answer without a key, any other address needs
one; ``everyone``: no key from anywhere (a deployment whose network already keeps strangers out);
``nobody``: a key always (a reverse proxy on this host that does not set ``X-Forwarded-For``
makes every client look local — uvicorn takes the client's address from that header when the
proxy connects from loopback). With a key, the docs take any valid key and ``/metrics`` a
province key: its figures are the whole service's.
"""

from __future__ import annotations

import ipaddress

from fastapi import HTTPException, Request

from api.auth import context, require_key

KEYLESS_OPS = ("loopback", "everyone", "nobody")


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything else or no address."""
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def keyless(request: Request) -> bool:
    mode = context(request).settings.keyless_ops
    client = request.client.host if request.client else None
    return mode == "everyone" or (mode == "loopback" and is_loopback(client))


async def docs_access(request: Request) -> None:
    """Dependency of the OpenAPI document and the docs page."""
    if not keyless(request):
        await require_key(request)


async def metrics_access(request: Request) -> None:
    """Dependency of ``/metrics``: keyless as configured, else a province key."""
    if keyless(request):
        return
    key = await require_key(request)
    if not key.scope.province:
        raise HTTPException(403, "/metrics needs a province key (its figures are the whole service's)")
