"""Which peers may tell edge about the original request: ``[server] trusted_proxies``.

A request's ``X-Forwarded-Host``, ``X-Forwarded-Proto`` and ``X-Forwarded-For``
(and ``Forwarded``) are claims any client can make. Edge believes them only when
the TCP peer is a configured trusted proxy (a load balancer or CDN in front of
edge); from anyone else they change nothing and are not passed upstream.

From a trusted peer:

- ``X-Forwarded-Host`` (its first value) names the host the request is routed
  by, unless the request target is in absolute form (RFC 9112 §3.2.2: the
  target's authority wins over any header);
- ``X-Forwarded-Proto: https`` makes the request count as HTTPS: no redirect to
  HTTPS, HSTS on the answer, ``Secure`` cookies, ``X-Forwarded-Proto: https``
  upstream;
- ``X-Forwarded-For`` and ``Forwarded`` are passed upstream, with the peer
  appended to ``X-Forwarded-For``.

Pure; peers are compared as IP addresses (IPv4-mapped IPv6 as IPv4).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SEEN_MAX = 4096  # peers remembered per process; a flood of new ones just clears it


def parse_peer(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A socket peer address as an IP (zone id dropped, IPv4-mapped IPv6 as IPv4)."""
    try:
        ip = ipaddress.ip_address(peer.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class TrustedProxies:
    """The configured proxies; :meth:`trusts` is a dictionary hit for a known peer."""

    __slots__ = ("_networks", "_seen")

    def __init__(self, networks: Iterable[Network]) -> None:
        self._networks = tuple(networks)
        self._seen: dict[str, bool] = {}

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies | None:
        """From checked config entries (IPs or CIDRs); ``None`` when there are none."""
        networks = [ipaddress.ip_network(e, strict=False) for e in entries]
        return cls(networks) if networks else None

    def trusts(self, peer: str | None) -> bool:
        if peer is None:
            return False
        known = self._seen.get(peer)
        if known is None:
            ip = parse_peer(peer)
            known = ip is not None and any(ip in net for net in self._networks)
            if len(self._seen) >= _SEEN_MAX:
                self._seen.clear()
            self._seen[peer] = known
        return known


def first_value(value: str | None) -> str | None:
    """The leftmost element of a comma-separated header value (the client-side hop)."""
    if value is None:
        return None
    first = value.partition(",")[0].strip(" \t")
    return first or None


def forwarded_https(proto: str | None) -> bool | None:
    """``X-Forwarded-Proto`` from a trusted proxy: True/False, ``None`` if absent or odd."""
    first = first_value(proto)
    if first is None:
        return None
    first = first.lower()
    if first == "https":
        return True
    if first == "http":
        return False
    return None


def client_address(
    peer: str | None, forwarded_for: str | None, proxies: TrustedProxies | None
) -> str:
    """The visitor's address, for per-client limits: the peer, or from a trusted proxy
    the rightmost ``X-Forwarded-For`` element that is not itself a trusted proxy.

    Only the rightmost elements are believed: each trusted hop appends the address
    it saw, while anything to their left came from the client and may be invented.
    Addresses are normalised (IPv4-mapped IPv6 as IPv4); an unparsable element
    stops the walk at the last address that was vouched for.
    """
    client = peer or ""
    if proxies is None or forwarded_for is None or not proxies.trusts(peer):
        return _canonical(client)
    for element in reversed(forwarded_for.split(",")):
        hop = element.strip(" \t")
        if parse_peer(hop) is None:
            break
        client = hop
        if not proxies.trusts(hop):
            break
    return _canonical(client)


def _canonical(address: str) -> str:
    ip = parse_peer(address)
    return address if ip is None else str(ip)
