"""Host -> (site, environment) resolution.

Pure and compiled once: every host a site answers to (its explicit production and
staging hosts plus ``<site-id>.<staging_domain>``) is normalised into one dict at
start-up, so the hot path is a dictionary lookup. ``resolve`` never raises: a Host
that cannot be normalised, or that no site claims, returns ``None``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import idna

Env = Literal["staging", "production"]
ENVS: tuple[Env, Env] = ("staging", "production")

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_MAX_HOST = 253
_MAX_LABEL = 63


@dataclass(frozen=True, slots=True)
class Route:
    """Where a host leads: one environment of one site."""

    site: str
    env: Env
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The live-pointer slot key, built once here instead of on every request.
        object.__setattr__(self, "key", f"{self.site}\x00{self.env}")

    def __hash__(self) -> int:
        # A route keys the page-view counter on every page view: hash the one string
        # (whose hash Python caches) rather than a new (site, env) tuple each time.
        return hash(self.key)


def _split_port(value: str) -> str | None:
    """Strip a ``:port`` suffix; ``None`` when the port is not a number."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[: end + 1], value[end + 1 :]
        if rest and not (rest[0] == ":" and rest[1:].isdigit() and rest[1:].isascii()):
            return None
        return host
    host, sep, port = value.partition(":")
    if sep and (not port.isascii() or not port.isdigit() or ":" in port):
        return None
    return host


def normalize_host(value: str | None) -> str | None:
    """Normalise a Host header value, or return ``None`` when it is not a host.

    Case-insensitive, port stripped, one trailing dot ignored, IDNA names turned
    into their ASCII (punycode) form, IPv6 literals kept in brackets.
    """
    if not value or len(value) > _MAX_HOST + 8:
        return None
    host = _split_port(value)
    if not host:
        return None
    if host.startswith("["):
        if "%" in host:  # a zone id is local to the client; it never names a site
            return None
        try:
            addr = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
        return f"[{addr.compressed}]"
    if host.endswith("."):
        host = host[:-1]
    if not host.isascii():
        try:
            # UTS 46 / IDNA 2008, as browsers send it ("faß" is "xn--fa-hia", not "fass").
            host = idna.encode(host, uts46=True).decode("ascii")
        except (UnicodeError, ValueError):
            return None
    host = host.lower()
    if not host or len(host) > _MAX_HOST or not _HOST_CHARS.issuperset(host):
        return None
    for label in host.split("."):
        if not label or len(label) > _MAX_LABEL:
            return None
    return host


class RouteTable:
    """The compiled host table: normalised host -> :class:`Route`."""

    __slots__ = ("_routes",)

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._routes: dict[str, Route] = dict(routes)

    @classmethod
    def build(cls, claims: Iterable[tuple[str, Route]]) -> RouteTable:
        """Compile ``(host, route)`` claims; hosts must already be normalised and unique."""
        routes: dict[str, Route] = {}
        for host, route in claims:
            if host in routes:
                raise ValueError(f"host {host!r} claimed twice")
            routes[host] = route
        return cls(routes)

    def resolve(self, host_header: str | None) -> Route | None:
        """The route for a raw Host header, or ``None``."""
        if host_header is None:
            return None
        route = self._routes.get(host_header)
        if route is not None:
            return route
        host = normalize_host(host_header)
        return None if host is None else self._routes.get(host)

    def routes(self) -> list[Route]:
        """Every route some host leads to (once each)."""
        return list({r.key: r for r in self._routes.values()}.values())

    def hosts_of(self, site: str, env: Env) -> list[str]:
        """Every host that leads to one environment of a site, sorted."""
        return sorted(h for h, r in self._routes.items() if r.site == site and r.env == env)

    def __len__(self) -> int:
        return len(self._routes)
