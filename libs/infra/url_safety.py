"""Where a webhook URL is judged safe: https only, public addresses only (unless allowed).

Checked at registration and again at send time, always against the RESOLVED addresses,
never the host string: `2130706433`, `0177.1` and `::ffff:127.0.0.1` all reach loopback.
The explicit deny-list backs up `ipaddress`' own flags, which had range bugs before 3.12.4.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DENIED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 reaches loopback on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::/96",  # includes ::/128, ::1 and the deprecated IPv4-compatible ::a.b.c.d
        "::ffff:0:0/96",  # IPv4-mapped: judged by the embedded IPv4 address below
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT): ::ffff:0:7f00:1 is 127.0.0.1 too
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",  # 6to4
        "fc00::/7",  # ULA
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local: still private wherever it is routed
        "ff00::/8",  # multicast
    )
)


class UnsafeURLError(ValueError):
    """The URL may not receive webhooks; the message says why, for the API's 400 body."""


@dataclass(frozen=True)
class SafetyPolicy:
    allow_private: bool = False  # HOOKPOST_ENV=dev
    allow_http: bool = False  # HOOKPOST_ENV=dev
    allowed_private_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_settings(cls, env_is_dev: bool, allowed_cidrs: Iterable[str]) -> SafetyPolicy:
        return cls(
            allow_private=env_is_dev,
            allow_http=env_is_dev,
            allowed_private_networks=tuple(
                ipaddress.ip_network(cidr, strict=False) for cidr in allowed_cidrs
            ),
        )


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return None


def is_public_address(address: IPAddress) -> bool:
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return False if not is_public_address(embedded) else address.ipv4_mapped is not None
    if any(address in network for network in DENIED_NETWORKS if network.version == address.version):
        return False
    return address.is_global and not address.is_multicast


def check_address(address: IPAddress, policy: SafetyPolicy) -> None:
    if policy.allow_private or is_public_address(address):
        return
    if any(
        address in network
        for network in policy.allowed_private_networks
        if network.version == address.version
    ):
        return
    raise UnsafeURLError(f"webhook URL resolves to a non-public address ({address})")


def check_url_shape(url: str, policy: SafetyPolicy) -> tuple[str, int]:
    """Scheme and host checks that need no DNS; returns (host, port)."""
    if len(url) > 2048:
        raise UnsafeURLError("webhook URL is longer than 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"webhook URL is not a valid URL: {exc}") from exc
    allowed_schemes = {"https", "http"} if policy.allow_http else {"https"}
    if parts.scheme not in allowed_schemes:
        raise UnsafeURLError("webhook URL must use https://")
    if not parts.hostname:
        raise UnsafeURLError("webhook URL has no host")
    if parts.username or parts.password:
        raise UnsafeURLError("webhook URL may not carry user:password credentials")
    default_port = 443 if parts.scheme == "https" else 80
    return parts.hostname, port or default_port


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def check_url(url: str, policy: SafetyPolicy) -> list[IPAddress]:
    """Raise UnsafeURLError unless every address the URL's host resolves to is allowed."""
    host, port = check_url_shape(url, policy)
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise UnsafeURLError(f"webhook URL host {host!r} does not resolve") from exc
    for address in addresses:
        check_address(address, policy)
    return addresses
