"""Reverse proxy of path prefixes to upstream origins (``upstreams`` of an environment).

:class:`UpstreamTable` is compiled once from the settings: route key -> that
environment's upstreams, longest prefix first, so a request of a route without
upstreams costs one dictionary miss. :func:`forward` streams one request to its
upstream and the answer back. What is sent either way is computed by the pure
:func:`upstream_target`, :func:`request_headers` and :func:`response_headers`.

Failures never show upstream internals to the visitor: a refused or failed connect
is a plain ``502``, a timeout before the answer starts a plain ``504`` (the details
go to the log). Once the answer has started, a failing upstream makes edge close the
visitor's connection, so a cut-off body never looks complete. The visitor side is
edge's own wire (:mod:`edge.wire.http1`); the upstream side is aiohttp's client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import aiohttp
from aiohttp import hdrs
from multidict import CIMultiDict, MultiMapping
from yarl import URL

from edge.config import EnvironmentConfig, Settings
from edge.netguard import ForbiddenTarget, allowed_networks, check_url
from edge.router import Env, Route
from edge.visitor.answers import Answer, plain
from edge.wire.exchange import Request, Responder

log = logging.getLogger("edge.upstream")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",  # not standard, but sent by old clients as a hop-by-hop header
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Request headers edge sets itself (or answers itself: Expect).
_REPLACED = frozenset({"host", "expect", "x-forwarded-proto", "x-forwarded-host"})
# Claims about earlier hops, passed on only from a trusted proxy (edge.wire.proxies).
_HOP_CLAIMS = frozenset({"x-forwarded-for", "forwarded"})
# aiohttp's client adds these when absent; a proxy must pass on what it got, no more.
_SKIP_AUTO = frozenset({hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT, hdrs.CONTENT_TYPE})
_DOT_SEGMENTS = frozenset({b".", b".."})


@dataclass(frozen=True, slots=True)
class Upstream:
    """Requests under ``prefix`` (``/api/``) go to ``origin`` (``scheme://host[:port]``)."""

    prefix: str
    origin: str


class UpstreamTable:
    """The compiled upstreams: route key -> upstreams, longest prefix first."""

    __slots__ = ("_routes",)

    def __init__(self, routes: Mapping[str, Iterable[Upstream]]) -> None:
        self._routes: dict[str, tuple[Upstream, ...]] = {}
        for key, upstreams in routes.items():
            ordered = tuple(sorted(upstreams, key=lambda u: len(u.prefix), reverse=True))
            if ordered:
                self._routes[key] = ordered

    @classmethod
    def build(cls, settings: Settings) -> UpstreamTable:
        """Every environment's ``upstreams``, keyed by ``Route(site, env).key``."""
        routes: dict[str, list[Upstream]] = {}
        for site in settings.config.sites:
            by_env: dict[Env, EnvironmentConfig] = {
                "staging": site.staging,
                "production": site.production,
            }
            for env, env_config in by_env.items():
                routes[Route(site.id, env).key] = [
                    Upstream(u.prefix, u.origin.rstrip("/")) for u in env_config.upstreams
                ]
        return cls(routes)

    def for_route(self, route_key: str) -> tuple[Upstream, ...]:
        """One environment's upstreams, longest prefix first."""
        return self._routes.get(route_key, ())

    def match(self, route_key: str, path: str) -> Upstream | None:
        """The upstream whose prefix is the longest that ``path`` starts with, or None.

        ``path`` is the request's normalised path (``edge.paths.request_path``). A
        prefix ``/api/`` matches ``/api/`` and everything under it, not ``/api``.
        """
        upstreams = self._routes.get(route_key)
        if upstreams is None:
            return None
        for upstream in upstreams:
            if path.startswith(upstream.prefix):
                return upstream
        return None

    def __len__(self) -> int:
        return sum(len(u) for u in self._routes.values())


def upstream_target(raw_path: str, prefix: str) -> str | None:
    """The request target to send upstream: the raw path and query, unchanged.

    ``None`` (answer 400) when the raw path is not under ``prefix`` as sent, or has a
    segment that is ``.`` or ``..`` once percent-decoded (also across an encoded
    ``/`` or ``\\``): the upstream might resolve it to a path outside the prefix
    that edge never matched.
    """
    target = raw_path.partition("#")[0]
    path = target.partition("?")[0]
    if not path.startswith(prefix):
        return None
    decoded = unquote_to_bytes(path).replace(b"\\", b"/")
    if not _DOT_SEGMENTS.isdisjoint(decoded.split(b"/")):
        return None
    return target


def _connection_scoped(headers: MultiMapping[str]) -> frozenset[str]:
    """Hop-by-hop header names: the fixed ones and those that Connection names."""
    named = {
        token.strip().lower()
        for value in headers.getall(hdrs.CONNECTION, ())
        for token in value.split(",")
    }
    named.discard("")
    return HOP_BY_HOP | named


def _append(existing: list[str], value: str) -> str:
    return ", ".join([*existing, value])


def request_headers(
    incoming: MultiMapping[str],
    *,
    peer: str | None,
    tls: bool,
    via: str,
    trusted: bool = False,
    host: str | None = None,
) -> CIMultiDict[str]:
    """The headers to send upstream for a visitor request with headers ``incoming``.

    Hop-by-hop headers, Host (the upstream gets its own) and Expect are dropped.
    X-Forwarded-For and Forwarded are kept only when the peer is a ``trusted``
    proxy; ``peer`` is appended to X-Forwarded-For. X-Forwarded-Proto says
    ``tls``, X-Forwarded-Host says ``host`` (default: the Host header), and ``via``
    (``1.1 edge``) is appended to Via.
    """
    drop = _connection_scoped(incoming) | _REPLACED
    if not trusted:
        drop |= _HOP_CLAIMS
    out, kept = _sorted_out(incoming, drop, ("x-forwarded-for", "via"))
    forwarded_for, vias = kept["x-forwarded-for"], kept["via"]
    if peer is not None:
        out[hdrs.X_FORWARDED_FOR] = _append(forwarded_for, peer)
    elif forwarded_for:
        out[hdrs.X_FORWARDED_FOR] = ", ".join(forwarded_for)
    out[hdrs.X_FORWARDED_PROTO] = "https" if tls else "http"
    if host is None:
        host = incoming.get(hdrs.HOST)
    if host is not None:
        out[hdrs.X_FORWARDED_HOST] = host
    out[hdrs.VIA] = _append(vias, via)
    return out


def response_headers(
    upstream: MultiMapping[str], *, env_headers: Mapping[str, str], via: str
) -> CIMultiDict[str]:
    """The headers to send the visitor for an upstream answer with headers ``upstream``.

    Hop-by-hop headers are dropped, ``via`` is appended to Via, and every header of
    ``env_headers`` replaces the upstream's values of that name.
    """
    drop = _connection_scoped(upstream) | {name.lower() for name in env_headers}
    out, kept = _sorted_out(upstream, drop, ("via",))
    out[hdrs.VIA] = _append(kept["via"], via)
    out.update(env_headers)
    return out


def _sorted_out(
    headers: MultiMapping[str], drop: Set[str], apart: tuple[str, ...]
) -> tuple[CIMultiDict[str], dict[str, list[str]]]:
    """The fields of ``headers`` whose lower-case names are not in ``drop``; the values
    of the ``apart`` names (lower case) set aside, in order, to be rewritten."""
    out: CIMultiDict[str] = CIMultiDict()
    kept: dict[str, list[str]] = {name: [] for name in apart}
    for name, value in headers.items():
        lower = name.lower()
        if lower in drop:
            continue
        values = kept.get(lower)
        if values is not None:
            values.append(value)
        else:
            out.add(name, value)
    return out, kept


def _bad_gateway(env_headers: Mapping[str, str]) -> Answer:
    return plain(502, "Bad Gateway: the upstream server could not be reached", env_headers)


def _gateway_timeout(env_headers: Mapping[str, str]) -> Answer:
    return plain(504, "Gateway Timeout: the upstream server did not answer in time", env_headers)


def _send(responder: Responder, answer: Answer) -> None:
    responder.answer(answer.status, answer.headers, answer.body)


async def forward(
    request: Request,
    responder: Responder,
    upstream: Upstream,
    session: aiohttp.ClientSession,
    *,
    env_headers: Mapping[str, str],
    tls: bool,
    trusted: bool = False,
    host: str | None = None,
    on_error: Callable[[str, str], None] = lambda kind, detail: None,
) -> None:
    """Proxy ``request`` to ``upstream`` and stream the answer back through ``responder``.

    Sends ``origin + raw path + query`` with the request body streamed, never
    follows a redirect, and answers 400 for a path that could leave the prefix
    (:func:`upstream_target`), 502 when the upstream is refused
    (:func:`edge.netguard.check_url`) or unreachable, 504 on a timeout before the
    answer starts. ``session`` is normally an :func:`edge.netguard.guarded_session`.
    ``on_error`` hears of every failure: its kind (``refused``, ``unreachable``,
    ``timeout``, ``cut_off``) and what went wrong. Both directions stream with
    backpressure: the visitor's body is read only as fast as the upstream takes it
    (``100 Continue`` is sent when the upstream starts reading it), and the answer is
    read from the upstream only as fast as the visitor takes it.
    """
    target = upstream_target(request.target, upstream.prefix)
    if target is None:
        _send(responder, plain(400, "Bad Request: malformed path", env_headers))
        return
    url = upstream.origin + target
    try:
        check_url(url, allowed_networks(session))
    except ForbiddenTarget as exc:
        log.warning("upstream %s for %s refused: %s", upstream.origin, upstream.prefix, exc)
        on_error("refused", str(exc))
        _send(responder, _bad_gateway(env_headers))
        return

    major, minor = request.version
    via = f"{major}.{minor} edge"
    headers = request_headers(
        request.headers, peer=request.peer, tls=tls, via=via, trusted=trusted, host=host
    )
    body = request.body
    try:
        answer = await session.request(
            request.method,
            URL(url, encoded=True),  # as received: no requoting, no normalisation
            headers=headers,
            data=body,
            allow_redirects=False,
            skip_auto_headers=_SKIP_AUTO,
        )
    except TimeoutError as exc:
        log.warning("upstream %s timed out: %r", upstream.origin, exc)
        on_error("timeout", repr(exc))
        _send(responder, _gateway_timeout(env_headers))
        return
    except (aiohttp.ClientError, OSError) as exc:
        if isinstance(exc, ConnectionResetError) and body is not None and body.gone:
            raise  # the visitor went away in the middle of its body
        log.warning("upstream %s failed: %s", upstream.origin, exc)
        on_error("unreachable", str(exc))
        _send(responder, _bad_gateway(env_headers))
        return

    async with answer:
        # Read the first chunk before answering, so that a timeout until then is
        # still a clean 504 rather than a cut-off response.
        try:
            chunk = await answer.content.readany()
        except TimeoutError as exc:
            log.warning("upstream %s timed out: %r", upstream.origin, exc)
            on_error("timeout", repr(exc))
            _send(responder, _gateway_timeout(env_headers))
            return
        except aiohttp.ClientError as exc:
            log.warning("upstream %s failed: %s", upstream.origin, exc)
            on_error("unreachable", str(exc))
            _send(responder, _bad_gateway(env_headers))
            return

        a_version = answer.version
        responder.start(
            answer.status,
            response_headers(
                answer.headers,
                env_headers=env_headers,
                via=f"{a_version.major}.{a_version.minor} edge" if a_version else via,
            ).items(),
            reason=answer.reason,
        )
        while chunk:
            await responder.write(chunk)  # ConnectionResetError: the visitor went away
            try:
                chunk = await answer.content.readany()
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("upstream %s failed mid-body: %r", upstream.origin, exc)
                on_error("cut_off", repr(exc))
                responder.cut()
                return
        await responder.end()
