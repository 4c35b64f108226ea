"""Outbound HTTP that cannot be pointed at internal addresses (upstreams, webhooks).

How this works
--------------
An upstream origin or a webhook URL comes from the configuration, and its host can
lead anywhere: to ``127.0.0.1``, to the cloud metadata service at
``169.254.169.254``, to a database on the private network. One pure rule,
:func:`is_forbidden`, decides which addresses are internal; it is applied three
times, each at a point where an attacker-chosen name could otherwise slip through:

1. :func:`check_url`, before each request. A host that is an IP literal in any form
   the OS accepts (``127.0.0.1``, ``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``)
   is judged at once and refused with a :class:`ForbiddenTarget` that says why.
2. :class:`GuardedResolver`, at DNS time. Names are resolved by aiohttp's threaded
   resolver and every forbidden address is dropped from the answer; a name left with
   none fails the connect ("refusing to connect to <host> (<ip>): private address").
3. The connector's socket factory, at connect time. Every address aiohttp is about to
   ``connect()`` to is checked once more, on the socket itself. This is the check
   that holds whatever happened before it: a literal IP that aiohttp never hands to
   the resolver, a DNS answer that changed since the last lookup (DNS rebinding), a
   cached answer.

``allow`` (``[server] allow_private_targets``) names the networks that may be reached
although they are internal, e.g. a sidecar on loopback. :func:`guarded_session`
builds the pooled client session with all of this in place.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_MAX_HOST = 255
# One part of a legacy IPv4 literal as inet_aton(3) reads it: hex, octal or decimal.
_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


class ForbiddenTarget(OSError):
    """A request or a connection would reach an internal address.

    An :class:`OSError`, so that aiohttp reports it as a failed connect
    (:class:`aiohttp.ClientConnectorError`) when it is raised while resolving or
    connecting.
    """

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def is_forbidden(ip: Address, allow: Sequence[Network]) -> bool:
    """Whether ``ip`` is internal (and not inside one of the ``allow`` networks).

    Internal: loopback, private (RFC 1918, unique-local ``fc00::/7``), link-local
    (``169.254.0.0/16``, ``fe80::/10``), unspecified, multicast, reserved, CGNAT
    ``100.64.0.0/10``, IPv6 site-local, anything else that is not globally routable,
    and every IPv6 form that carries such an IPv4 address (mapped ``::ffff:a.b.c.d``,
    compatible ``::a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``, 6to4 ``2002:aabb:ccdd::``).
    """
    if any(ip in net for net in allow):  # a v4 address is never "in" a v6 network
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # The packet ends up at the IPv4 address, so that address decides.
            return is_forbidden(embedded, allow)
        if ip.sixtofour is not None and is_forbidden(ip.sixtofour, allow):
            return True
        if ip.is_site_local:
            return True
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or ip in _CGNAT
        or not ip.is_global
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    value = int(ip)
    if value >> 32 == 0 or ip in _NAT64:  # IPv4-compatible ::a.b.c.d (incl. ::, ::1), NAT64
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def parse_ip(host: str) -> Address | None:
    """The address an IP-literal host stands for, in any form the OS accepts; else None.

    Besides the canonical forms this reads the legacy IPv4 forms of inet_aton(3)
    (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``), IPv6 in brackets and with
    a zone id, and ignores one trailing dot. A host name gives ``None``.
    """
    if len(host) > _MAX_HOST:  # no such name; and int() refuses a few thousand digits
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return None
    return _inet_aton(host.removesuffix("."))


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    parts = host.split(".")
    if len(parts) > 4 or not all(p.isascii() and _ATON_PART.fullmatch(p) for p in parts):
        return None
    *head, last = (_aton_value(p) for p in parts)
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = last
    for i, v in enumerate(head):
        value |= v << (24 - 8 * i)
    return ipaddress.IPv4Address(value)


def _aton_value(part: str) -> int:
    if part[1:2] in ("x", "X"):
        return int(part, 16)
    return int(part, 8 if part[0] == "0" else 10)


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """``allow_private_targets`` strings -> networks (host bits allowed, as in the config)."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def check_url(url: str | URL, allow: Sequence[Network]) -> None:
    """Raise :class:`ForbiddenTarget` unless ``url`` is an http(s) URL that may be tried.

    A host that is an IP literal (in any form, see :func:`parse_ip`) is judged here;
    a host name is left to :class:`GuardedResolver` and the connect-time check.
    """
    try:
        target = url if isinstance(url, URL) else URL(url)
        host = target.raw_host
    except ValueError:
        raise ForbiddenTarget("not a valid URL") from None
    if target.scheme not in ("http", "https") or not host:
        raise ForbiddenTarget("not an http(s) URL")
    ip = parse_ip(host)
    if ip is not None and is_forbidden(ip, allow):
        raise ForbiddenTarget(f"refusing to connect to {host} ({ip}): private address")


def _resolved(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """A resolver that never answers with an internal address.

    Wraps aiohttp's :class:`aiohttp.ThreadedResolver` (or ``resolver``); must be
    created inside a running event loop.
    """

    def __init__(self, allow: Sequence[Network], resolver: AbstractResolver | None = None) -> None:
        self._allow = tuple(allow)
        self._inner = resolver if resolver is not None else aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and drop every forbidden address; none left: ForbiddenTarget."""
        answers = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refused: str | None = None
        for answer in answers:
            ip = _resolved(answer["host"])
            if ip is None or is_forbidden(ip, self._allow):
                refused = refused or answer["host"]
            else:
                kept.append(answer)
        if not kept:
            if refused is None:
                raise OSError(f"{host}: no address")
            raise ForbiddenTarget(f"refusing to connect to {host} ({refused}): private address")
        return kept

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket_factory(allow: Sequence[Network]) -> aiohttp.SocketFactoryType:
    """The connect-time check: a socket factory that refuses internal addresses."""
    networks = tuple(allow)

    def factory(addr_info: aiohttp.AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        host = str(sockaddr[0])
        ip = _resolved(host)
        if ip is None or is_forbidden(ip, networks):
            raise ForbiddenTarget(f"refusing to connect to {host}: private address")
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


class GuardedConnector(aiohttp.TCPConnector):
    """A pooled TCP connector whose every connection passes :func:`is_forbidden`.

    ``resolver`` is what answers DNS questions (default: aiohttp's threaded
    resolver); it is always wrapped in a :class:`GuardedResolver`, so a resolver
    that answers with internal addresses (a test's, or a rebinding DNS server's)
    never gets a connection through.
    """

    def __init__(self, allow: Sequence[Network], resolver: AbstractResolver | None = None) -> None:
        self.allow: tuple[Network, ...] = tuple(allow)
        super().__init__(
            resolver=GuardedResolver(self.allow, resolver),
            socket_factory=guarded_socket_factory(self.allow),
        )


def allowed_networks(session: aiohttp.ClientSession) -> tuple[Network, ...]:
    """The allow-list of a :func:`guarded_session`; none for any other session."""
    connector = session.connector
    return connector.allow if isinstance(connector, GuardedConnector) else ()


def guarded_session(
    allow: Sequence[str],
    *,
    connect_timeout: float,
    read_timeout: float,
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """A pooled client session that refuses internal addresses outside ``allow``.

    ``allow`` are CIDR strings (``[server] allow_private_targets``). No total
    timeout (a proxied body may stream for long), no cookie jar, bodies passed on
    as received (no decompression). Create it inside the running loop and close it;
    callers pass ``allow_redirects=False`` and call :func:`check_url` first.
    ``resolver`` replaces the system resolver under the guard (see
    :class:`GuardedConnector`).
    """
    return aiohttp.ClientSession(
        connector=GuardedConnector(parse_networks(allow), resolver),
        timeout=aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
