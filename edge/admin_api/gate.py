"""Authorization of every admin call, in one place, from the table of operations.

The admin application registers each route together with its
:class:`~edge.admin_api.operations.Operation` (:meth:`Gate.add`); the gate's
middleware, the innermost one, looks the matched route's operation up and admits
the caller before the handler runs:

- any call: a valid bearer token (401 otherwise), unless the configuration opens
  the operation to anyone (``[server] metrics_public`` for ``/metrics``);
- ``every_site``: a token that sees every site, whatever its role (403);
- a ``{site}`` path: a site the token may see and the operation's role on it
  (``staging_role`` for a staging ``{env}``). A site that does not exist is
  404 ``unknown_site`` only to a token that may see every site; a token scoped
  to other sites gets 403 and learns nothing.

Handlers read who called from ``request[CALLER]``. Requests that matched no
route (404, 405) pass through to the error they carry.
"""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from edge.admin_api.auth import Principal, TokenBook
from edge.admin_api.operations import Operation
from edge.errors import Forbidden, UnknownSite

CALLER = web.RequestKey("caller", Principal)


class Gate:
    """The operation of every admin route, and the middleware that enforces its access."""

    def __init__(
        self, tokens: TokenBook, sites: frozenset[str], *, public: Collection[str] = ()
    ) -> None:
        self._tokens = tokens
        self._sites = sites
        self._public = frozenset(public)  # operation ids the configuration opens
        self._operations: dict[web.AbstractRoute, Operation] = {}

    def add(self, router: web.UrlDispatcher, op: Operation, handler: Handler) -> None:
        """Register ``op``'s route (with HEAD beside a GET, as aiohttp does) under the gate."""
        if op.method == hdrs.METH_GET:
            route = router.add_get(op.path, handler)
        else:
            route = router.add_route(op.method, op.path, handler)
        for added in route.resource or ():
            if added.handler is handler:  # this op's GET and HEAD, not a neighbour's
                self._operations[added] = op

    def guards(self, route: web.AbstractRoute) -> bool:
        """Whether ``route`` was registered with an operation."""
        return route in self._operations

    def admit(self, op: Operation, request: web.Request) -> Principal | None:
        """The caller of ``op`` if it may make this call (None: the call is open)."""
        if op.operation_id in self._public:
            return None
        principal = self._tokens.authenticate(request.headers.get(hdrs.AUTHORIZATION))
        if op.every_site is not None and not principal.sees_every_site:
            raise Forbidden(op.every_site)
        site = request.match_info["site"] if op.site_scoped else None
        if site is not None and site not in self._sites and principal.sees(site):
            raise UnknownSite(f"no site {site!r}")
        self._tokens.authorize(principal, site, op.role_for(request.match_info.get("env")))
        return principal

    def middleware(self) -> Middleware:
        """The middleware that admits each call before its handler runs."""

        @web.middleware
        async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
            op = self._operations.get(request.match_info.route)
            if op is not None:
                principal = self.admit(op, request)
                if principal is not None:
                    request[CALLER] = principal
            return await handler(request)

        return gate
