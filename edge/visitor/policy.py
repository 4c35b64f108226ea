"""Per-route policy, compiled once per configuration: Host -> one object in one lookup.

A :class:`RoutePolicy` holds everything the visitor side decides from the host
alone (environment, HTTPS redirect, HSTS, preview password, upstreams), for one
listener (plain or HTTPS: the redirect and HSTS differ). :class:`Policies`
maps raw ``Host`` values to them; a raw value seen before costs one dictionary
lookup, a new one is normalised once (:mod:`edge.router`) and remembered, within
a bound. Swapped whole on ``edge reload``. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from edge.cache import CacheKey
from edge.router import Env, Route, normalize_host
from edge.visitor.hosts import HostPolicy
from edge.visitor.upstream import Upstream, UpstreamTable
from edge.wire.proxies import TrustedProxies

_SEEN_MAX = 4096  # raw Host values remembered; a flood of new ones just clears them
_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class Found:
    """Where a raw target led on one snapshot: the entry's cache keys and facts."""

    snapshot_id: str
    path: str  # manifest key
    keys: tuple[CacheKey, ...]  # by coding index: identity, gzip, br, zstd
    compressible: bool
    rangeable: bool
    html: bool
    view: tuple[str, str]  # the page-view counter's key (edge.visitor.analytics)


@dataclass(slots=True, eq=False)
class RoutePolicy:
    """One environment of one site, as one listener serves it."""

    route: Route
    key: str
    env: Env
    staging: bool
    redirect_to_https: bool  # plain-HTTP requests answer 308 to HTTPS (a listener's view)
    hsts: str | None  # Strict-Transport-Security on HTTPS answers
    password: str | None  # staging's preview password (HTTP Basic)
    upstreams: tuple[Upstream, ...]
    # Raw request target -> where it led last time (edge.visitor.handler's hit path).
    targets: dict[str, Found] = field(default_factory=dict)
    # Nothing but content decides an answer here (no HTTPS redirect, no password).
    simple: bool = field(init=False)

    def __post_init__(self) -> None:
        self.simple = not self.redirect_to_https and self.password is None


class _Remembered(dict[_K, "RoutePolicy | None"]):
    """Raw Host value -> policy, worked out by ``find`` on first sight and remembered;
    past :data:`_SEEN_MAX` values (a flood of made-up hosts) it starts over."""

    __slots__ = ("_find",)

    def __init__(self, find: Callable[[_K], RoutePolicy | None]) -> None:
        super().__init__()
        self._find: Callable[[_K], RoutePolicy | None] = find

    def __missing__(self, host: _K) -> RoutePolicy | None:
        policy = self._find(host)
        if len(self) >= _SEEN_MAX:
            self.clear()
        self[host] = policy
        return policy


class Policies:
    """Raw Host -> :class:`RoutePolicy` for one listener; ``None`` for unknown hosts."""

    __slots__ = ("_by_key", "_seen", "by_raw_host", "host_policy", "https_port", "proxies", "tls")

    def __init__(self, hosts: HostPolicy, upstreams: UpstreamTable | None, *, tls: bool) -> None:
        self.host_policy = hosts
        self.tls = tls
        self.https_port = hosts.https_port
        self.proxies: TrustedProxies | None = hosts.proxies
        self._by_key: dict[str, RoutePolicy] = {}
        self._seen: _Remembered[str | None] = _Remembered(self._find)
        # The Host field's bytes -> policy: what the hit path reads (one subscript).
        self.by_raw_host: _Remembered[bytes | None] = _Remembered(self._find_raw)

    def _compile(self, route: Route, upstreams: UpstreamTable | None) -> RoutePolicy:
        hosts = self.host_policy
        key = route.key
        return RoutePolicy(
            route=route,
            key=key,
            env=route.env,
            staging=route.env == "staging",
            redirect_to_https=(
                not self.tls and hosts.https_port is not None and key in hosts.https_only
            ),
            hsts=hosts.hsts.get(key) if self.tls else None,
            password=hosts.passwords.get(key),
            upstreams=upstreams.for_route(key) if upstreams is not None else (),
        )

    @classmethod
    def build(cls, hosts: HostPolicy, upstreams: UpstreamTable | None, *, tls: bool) -> Policies:
        policies = cls(hosts, upstreams, tls=tls)
        for route in hosts.routes.routes():
            if route.key not in policies._by_key:
                policies._by_key[route.key] = policies._compile(route, upstreams)
        return policies

    def resolve(self, host: str | None) -> RoutePolicy | None:
        """The policy of a raw Host value (``None``: no site is served there)."""
        return self._seen[host]

    def resolve_raw(self, host: bytes | None) -> RoutePolicy | None:
        """:meth:`resolve` for the Host field's bytes."""
        return self.by_raw_host[host]

    def _find(self, host: str | None) -> RoutePolicy | None:
        route = self.host_policy.routes.resolve(host)
        return None if route is None else self._by_key.get(route.key)

    def _find_raw(self, host: bytes | None) -> RoutePolicy | None:
        return self._seen[None if host is None else host.decode("latin-1")]

    def for_route(self, route: Route) -> RoutePolicy | None:
        return self._by_key.get(route.key)


def malformed_host(host: str | None) -> bool:
    """A Host value that is no host at all (400, where an unknown one is 421)."""
    return bool(host) and normalize_host(host) is None
