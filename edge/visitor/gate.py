"""Staging's preview gate: a preview link, its cookie, or the password.

Called only for staging requests that need it (a password is set, a preview
cookie came, or the path is the preview link's); everything else never gets
here.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

from edge.router import Route
from edge.snapshots.live import SnapshotLoader
from edge.snapshots.model import Snapshot
from edge.visitor.answers import Answer, empty, plain
from edge.visitor.preview import COOKIE, LINK_PATH, PreviewSigner, password_matches
from edge.visitor.representation import env_headers

REALM = 'Basic realm="staging preview", charset="UTF-8"'


def cookie_value(header: str | None, name: str) -> str | None:
    """One cookie of a ``Cookie`` header (the first of that name), or ``None``."""
    if not header:
        return None
    for pair in header.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def query_value(query: str, name: str) -> str | None:
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name:
            return value
    return None


def preview_cookie(token: str, max_age: int, *, secure: bool) -> str:
    cookie = f"{COOKIE}={token}; HttpOnly; Max-Age={max_age}; Path=/; SameSite=Lax"
    return cookie + "; Secure" if secure else cookie


async def preview_gate(
    route: Route,
    path: str | None,
    *,
    query: str,
    cookie_header: str | None,
    authorization: str | None,
    password: str | None,
    https: bool,
    signer: PreviewSigner | None,
    loader: SnapshotLoader,
) -> Answer | Snapshot | None:
    """An answer to send (refusal, the link's redirect), the pinned snapshot of a
    valid preview cookie, or ``None`` to serve live staging."""
    headers = env_headers(route.env, None)
    if path == LINK_PATH:
        token = query_value(query, "token") or ""
        grant = signer.verify(token, route.site) if signer is not None else None
        if grant is None:
            return plain(403, "This preview link is invalid or has expired", headers)
        headers["Location"] = "/"
        headers["Set-Cookie"] = preview_cookie(
            token, max(int(grant.expires - time.time()), 1), secure=https
        )
        return empty(303, headers)
    cookie = cookie_value(cookie_header, COOKIE)
    if cookie:
        grant = signer.verify(cookie, route.site) if signer is not None else None
        if grant is not None:
            pinned = await loader.load(route.site, grant.snapshot)
            if pinned is not None:
                return pinned
        if password is None:
            return None  # a public staging site: an old or foreign cookie changes nothing
    if password is None or password_matches(authorization, password):
        return None
    headers["WWW-Authenticate"] = REALM
    refused: Answer = plain(401, "This staging site needs the preview password", headers)
    return refused
