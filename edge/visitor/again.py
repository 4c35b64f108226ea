"""Whole request heads answered from the cache, remembered by their bytes.

A visitor's browser, a monitor or a load balancer sends the same request head again
and again on one keep-alive connection: the same target, Host, Accept-Encoding and
the rest, byte for byte. When a read held exactly one such head, the C parser
accepted it whole and the hit path answered it from the cache
(:meth:`edge.visitor.handler.VisitorHandler.hit`), the wire hands its bytes here.
The next read with the same bytes, arriving between requests, is answered without
parsing it again: the parser would reach the same request, and the parser's state
between two keep-alive messages is its start state, so nothing is skipped that
could differ.

An answer remembered is given again only while everything it was decided from still
holds, checked per request: this process's view of the pointers is current, the
route still serves the snapshot it came from, and the cache still holds a
representation with the same ETag under the same key (the lookup also keeps its LRU
recency). The book holds no body: what the cache evicts is gone. A reload of the host
policy forgets them all. Anything that depends on more than the head's bytes is
never remembered: the hit path already declines trusted proxies, passwords, HTTPS
redirects, preview cookies and ranges, and the handler remembers nothing while the
access log is on (its lines want the parsed request).

Bounded: at most :data:`KEEP` heads of at most :data:`HEAD_MAX` bytes; a flood of
distinct heads starts the book over.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.cache import CacheKey
from edge.router import Route

KEEP = 1024  # remembered heads per listener
HEAD_MAX = 2048  # longer heads are parsed every time


@dataclass(slots=True, eq=False)
class Again:
    """How one request head was answered from the cache, and what that relied on."""

    key: str  # the route's pointer key
    route: Route
    snapshot_id: str
    cache_key: CacheKey
    etag: str  # of the representation answered (not the object: the cache owns it)
    size: int  # of its body: a representation answered again must have both the same
    status: int  # 200 or 304
    head: bytes  # status line and headers, without the Date line
    body: bool  # the answer sends the representation's body (not HEAD, not 304)
    view: tuple[str, str] | None  # the page view to count (HTML GET), by its key


class AgainBook(dict[bytes, Again]):
    """Request head bytes -> :class:`Again`, bounded."""

    __slots__ = ()

    def remember(self, head: bytes, again: Again) -> None:
        if len(head) > HEAD_MAX:
            return
        if len(self) >= KEEP and head not in self:
            self.clear()
        self[head] = again
