"""The rule notifications obey, as webhook triggers do: never to loopback, link-local or private
addresses unless CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS.

Names are checked where they are resolved (an aiohttp resolver, and `resolve` for IRC), and the
connection goes to an address that was checked, so a name that resolves to a public address for
the check and to a private one for the connection cannot get through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver


class Refused(Exception):
    """The destination is not a public address."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, allow_private: bool) -> None:
    """Refuse a URL naming a private address outright (aiohttp resolves no literal address)."""
    host = (urlsplit(url).hostname or "").strip("[]")
    if allow_private:
        return
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked by the resolver
    if not is_public(str(literal)):
        raise Refused(f"{host} is not a public address (CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS)")


class PublicResolver(AbstractResolver):
    """Resolves as usual, keeping only public addresses (all of them when private ones are
    allowed)."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        kept = [item for item in found if self.allow_private or is_public(item["host"])]
        if not kept:
            raise Refused(
                f"{host} resolves to no public address (CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS)"
            )
        return kept

    async def close(self) -> None:
        await self.inner.close()


async def resolve(host: str, port: int, allow_private: bool) -> str:
    """One address of host to connect to, checked."""
    host = host.strip("[]")
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, address in infos:
        if allow_private or is_public(str(address[0])):
            return str(address[0])
    raise Refused(f"{host} resolves to no public address (CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS)")
