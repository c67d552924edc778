"""Where outgoing webhooks may go — webhook triggers (`conjunction.forges.webhook`) and
notifications (`conjunction.notify`) alike: never to this machine or the network it sits in (SSRF).

A webhook URL comes from a repository's config, so anyone who can push a `.conjunction.yml`
chooses it. Every address a request would connect to is checked — an IP literal in the URL
before sending, a host name by `GuardedResolver` as it resolves — and the connection uses the
address that was checked, so a name that resolves once to a public address and then to a
private one (DNS rebinding) cannot slip through. Loopback, link-local, private, shared,
multicast, reserved and unspecified addresses (IPv4 and IPv6, IPv4 inside IPv6 included) are
refused unless CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS allows them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

ALLOW_SETTING = "CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """A webhook would connect to an address it may not reach; the message says which."""


def _kind(address: Address) -> str | None:
    """What makes an address off limits, or None for a public unicast one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return _kind(embedded)
    checks = (
        ("an unspecified", address.is_unspecified),
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
        ("a non-public", not address.is_global),  # shared (100.64/10), documentation, …
    )
    return next((kind for kind, applies in checks if applies), None)


def address_kind(text: str) -> str | None:
    """What makes an IP address off limits for a webhook ("a loopback address"), or None when
    a webhook may connect to it; ValueError when `text` is not an IP address."""
    kind = _kind(ipaddress.ip_address(text.split("%", 1)[0]))  # fe80::1%eth0: zone ignored
    return f"{kind} address" if kind else None


def _refused(host: str, problem: str) -> AddressRefused:
    return AddressRefused(
        f"refused to call {host}{problem} (set {ALLOW_SETTING}=true for CI inside your network)"
    )


def check_literal(host: str) -> None:
    """Raise AddressRefused for a URL host that is an IP address off limits; names pass (they
    are checked as they resolve)."""
    try:
        kind = address_kind(host)
    except ValueError:
        return  # a name
    if kind is not None:
        raise _refused(host, f", {kind}")


class GuardedResolver(AbstractResolver):
    """Resolves as `base` does, and refuses a name when any of its addresses is off limits."""

    def __init__(self, base: AbstractResolver | None = None) -> None:
        self._base = base or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._base.resolve(host, port, family)
        for result in results:
            kind = address_kind(result["host"])
            if kind is not None:
                raise _refused(host, f": it resolves to {result['host']}, {kind}")
        return results

    async def close(self) -> None:
        await self._base.close()


async def resolve_checked(host: str, port: int, allow_private: bool) -> str:
    """One address of host to open a plain socket to (IRC), checked as `GuardedResolver`
    checks: refused when any of its addresses is off limits (unless private ones are
    allowed)."""
    host = host.strip("[]")
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            kind = address_kind(address)
            if kind is not None:
                raise _refused(host, f": it resolves to {address}, {kind}")
    if not addresses:
        raise OSError(f"{host} has no address")
    return addresses[0]
