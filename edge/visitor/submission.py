"""Form posts from visitors (``POST /_edge/forms/{name}``): read, check, store, answer.

One entry point, :func:`submit`. The body is read up to the form's
``max_bytes`` (413 as soon as it passes, never buffered past it), decoded and
checked by the pure :mod:`edge.visitor.forms`, and stored durably in the
environment's inbox (with its webhook events) before the answer.
"""

from __future__ import annotations

import logging

from edge.errors import FormError, FormTooLarge, InboxFull, StoreUnavailable
from edge.integrations.webhooks import Webhooks
from edge.router import Route
from edge.snapshots.settings import CompiledSettings
from edge.snapshots.store import Store
from edge.visitor.answers import Answer, empty, plain
from edge.visitor.formguard import FormGuard, Refusal
from edge.visitor.forms import parse_form
from edge.visitor.representation import env_headers
from edge.wire.exchange import Request
from edge.wire.framing import encoded_body

log = logging.getLogger("edge.visitor")

RETRY_AFTER_SECONDS = "10"


async def submit(
    request: Request,
    route: Route,
    snapshot_id: str,
    settings: CompiledSettings,
    name: str,
    *,
    store: Store,
    webhooks: Webhooks | None,
    guard: FormGuard | None = None,
) -> Answer:
    """The answer to one form post: 303/204 once stored, else why not."""
    headers = env_headers(route.env, snapshot_id)
    form = settings.forms.get(name)
    if form is None:
        return plain(404, f"No form named {name!r}", headers)
    # -- abuse limits (edge.visitor.formguard): rate, then disk reserve ----------
    if guard is not None:
        forwarded_for = request.header(b"x-forwarded-for")
        refusal = guard.admit(route, name, form, request.peer, forwarded_for)
        if refusal is not None:
            return _refuse(refusal, headers)
    # -- end of abuse limits ---------------------------------------------------------
    if request.body is not None and encoded_body(request.header(b"content-encoding")):
        return plain(415, "Form bodies must not be content-coded", headers)
    try:
        body = await read_limited(request, form.max_bytes)
        fields = parse_form(request.header(b"content-type"), body, form)
    except FormError as exc:
        return plain(exc.status, exc.message, headers)
    events = []
    if webhooks is not None:
        events = webhooks.events(
            route.site, route.env, "form.submitted", {"form": name, "fields": fields}
        )
    try:
        await store.add_form_submission(
            route.site,
            route.env,
            name,
            fields,
            events,
            limits=None if guard is None else guard.inbox,
        )
    except InboxFull:
        assert guard is not None  # only a capped write is refused as full
        return _refuse(guard.inbox_full(route, name), headers)
    except StoreUnavailable as exc:
        log.error("form %r of %s could not be stored: %s", name, route.site, exc.message)
        headers["Retry-After"] = RETRY_AFTER_SECONDS
        return plain(503, "Service Unavailable: please try again later", headers)
    if form.redirect is not None:
        headers["Location"] = form.redirect
        return empty(303, headers)
    return empty(204, headers)


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it passes ``limit`` (never buffered past it)."""
    length = request.fields.get(b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise FormTooLarge(f"form bodies are limited to {limit} bytes")
    body = request.body
    if body is None:
        return b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise FormTooLarge(f"form bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(refusal: Refusal, headers: dict[str, str]) -> Answer:
    if refusal.retry_after is not None:
        headers["Retry-After"] = refusal.retry_after
    return plain(refusal.status, refusal.message, headers)
