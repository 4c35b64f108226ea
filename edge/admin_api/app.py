"""Admin API v1 routes: read the request, call the core, write JSON."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

import msgspec
from aiohttp import hdrs, web

from edge.admin_api.auth import Principal, TokenBook
from edge.admin_api.budget import WorkBudget
from edge.admin_api.openapi import OPENAPI_PATH, openapi_json
from edge.admin_api.schemas import (
    Analytics,
    BlobStored,
    Caller,
    CreateSnapshotRequest,
    DayViews,
    Delivery,
    DeliveryList,
    DeliveryStatus,
    DiffResponse,
    Environments,
    EnvironmentSet,
    FormsDeleted,
    FormSubmissionList,
    GcRequest,
    GcResult,
    HistoryDoc,
    HistoryList,
    MissingBlobsRequest,
    MissingBlobsResponse,
    NodeDoc,
    NodesResponse,
    PointerDoc,
    PreviewLink,
    PreviewLinkRequest,
    Published,
    PublishPreview,
    PublishRequest,
    Refreshed,
    RefreshRequest,
    RollbackRequest,
    ScheduleDoc,
    ScheduleList,
    ScheduleRequest,
    ScheduleStatus,
    SetEnvironmentRequest,
    SiteDirectory,
    SitesResponse,
    SnapshotDetail,
    SnapshotList,
    SnapshotSummary,
    decode,
)
from edge.admin_api.streaming import (
    STREAM_FILES_OVER,
    diff_lists,
    stream_with_files,
    stream_with_lists,
)
from edge.admin_api.ui import add_ui_routes
from edge.config import Role
from edge.errors import (
    BadRequest,
    Conflict,
    EdgeError,
    HeadersTooLarge,
    NotFound,
    NotPropagated,
    PayloadTooLarge,
    UnknownSite,
    UnsupportedMediaType,
    UriTooLong,
)
from edge.router import ENVS, Env
from edge.snapshots.control import Control, Moved, NewFile
from edge.snapshots.live import estimated_bytes
from edge.snapshots.model import NodeState, Pointer, Schedule, Snapshot
from edge.snapshots.promotion import environments_etag
from edge.snapshots.schedule import parse_moment
from edge.snapshots.store import Store
from edge.visitor.preview import PreviewSigner

log = logging.getLogger("edge.admin")

_encoder = msgspec.json.Encoder()
_BLOB_CHUNK = 256 * 1024
_PARALLEL_UPLOADS = 4
# Large work (edge.admin_api.budget): a decoded snapshot body takes about this
# many times its JSON; a diff holds two manifests and its answer.
DECODED_FACTOR = 4
DEFAULT_WORK_BYTES = 512 * 1024 * 1024
DIFF_COST = 64 * 1024 * 1024
_MAX_ID = 2**62  # larger ids do not fit SQLite's integers and never exist
_MAX_PAGE = 500
INBOX_PAGE_BYTES = 4 * 1024 * 1024  # stored bytes of submissions in one inbox page
_SHA256_HEX = frozenset("0123456789abcdef")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # fullmatch: no trailing newline

# A publish's dry run lists these paths (in this order in its document).
_PREVIEW_LISTS = ("added", "removed", "changed", "kept", "conflicts")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encoder.encode(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error_response(error: EdgeError) -> web.Response:
    # An error that names a wait (503 busy) says it in the header too (RFC 9110).
    retry_after = error.extra.get("retry_after")
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    return json_response(error.body(), status=error.status, headers=headers)


# What the parser refuses (edge.wire.protocol), as the API's errors.
_WIRE_ERRORS: dict[int, type[EdgeError]] = {
    400: BadRequest,
    413: PayloadTooLarge,
    414: UriTooLong,
    431: HeadersTooLarge,
}


def wire_refusal(status: int) -> web.Response:
    """A request aiohttp's parser refused before this app saw it, in the API's error format."""
    error = _WIRE_ERRORS.get(status, BadRequest)(
        f"the request could not be read ({HTTPStatus(status).phrase.lower()})"
    )
    response = _error_response(error)
    response.force_close()
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as ``{"error": {"code", "message"}}`` with its status."""
    try:
        return await handler(request)
    except EdgeError as exc:
        return _error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        resp = json_response({"error": {"code": code, "message": exc.reason}}, status=exc.status)
        if exc.status == 405 and hdrs.ALLOW in exc.headers:
            resp.headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
        return resp
    except Exception:
        log.exception("admin request %s %s failed", request.method, request.path)
        return json_response(
            {"error": {"code": "internal", "message": "internal error, see the server log"}},
            status=500,
        )


def _pointer_doc(p: Pointer, messages: dict[str, str]) -> PointerDoc:
    return PointerDoc(
        snapshot=p.snapshot,
        base=p.base,
        updated_at=p.updated_at,
        actor=p.actor,
        message=None if p.snapshot is None else messages.get(p.snapshot),
    )


def _snapshot_summary(s: Snapshot) -> SnapshotSummary:
    return SnapshotSummary(
        id=s.id,
        site=s.site,
        parent=s.parent,
        message=s.message,
        created_at=s.created_at,
        actor=s.actor,
        files=len(s.files),
    )


def _role_for(request: web.Request, *, staging: Role) -> Role:
    """Staging needs ``staging``; production (or anything else) needs publisher."""
    return staging if request.match_info.get("env") == "staging" else "publisher"


def _int_query(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 1 <= int(raw) <= high:
        raise BadRequest(f"query parameter {name!r} must be a whole number from 1 to {high}")
    return int(raw)


PreviewUrl = Callable[[str, str], str]
# The cluster generation and the registered nodes (edge.snapshots.fanout.cluster_view).
ClusterView = Callable[[], Awaitable[tuple[int, list[NodeState]]]]


class AdminApi:
    """The v1 handlers, bound to one process's control, store and tokens."""

    def __init__(
        self,
        control: Control,
        store: Store,
        tokens: TokenBook,
        sites: frozenset[str],
        max_blob_bytes: int,
        signer: PreviewSigner | None = None,
        preview_url: PreviewUrl | None = None,
        directory: Callable[[], SiteDirectory] | None = None,
        cluster: ClusterView | None = None,
        budget: WorkBudget | None = None,
    ) -> None:
        self._control = control
        self._store = store
        self._tokens = tokens
        self._sites = sites
        self._max_blob_bytes = max_blob_bytes
        self._signer = signer
        self._preview_url = preview_url
        self._directory = directory
        self._cluster = cluster  # None: the single-machine SQLite store
        # Uploads streaming to disk at once (each holds a chunk in memory and a
        # temporary file): a bound on what concurrent uploads can take.
        self._uploads = asyncio.Semaphore(_PARALLEL_UPLOADS)
        # Large snapshot bodies, manifests and diffs: two at a time, within a byte
        # budget (edge.admin_api.budget).
        self._budget = budget or WorkBudget(DEFAULT_WORK_BYTES)

    # -- plumbing ------------------------------------------------------------------

    def _authorize(self, request: web.Request, role: Role) -> tuple[str, Principal]:
        principal = self._tokens.authenticate(request.headers.get(hdrs.AUTHORIZATION))
        site = request.match_info["site"]
        if site not in self._sites:
            if principal.sees(site):  # a token scoped to other sites learns nothing: 403
                raise UnknownSite(f"no site {site!r}")
        self._tokens.authorize(principal, site, role)
        return site, principal

    @staticmethod
    async def _json_body(request: web.Request) -> bytes:
        ctype = request.headers.get(hdrs.CONTENT_TYPE, "application/json")
        media = ctype.partition(";")[0].strip().lower()
        if request.can_read_body and media != "application/json":
            raise UnsupportedMediaType("request bodies are application/json")
        if (request.content_length or 0) > request.client_max_size:  # refused before reading
            raise PayloadTooLarge(f"request body over {request.client_max_size} bytes")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(f"request body over {request.client_max_size} bytes") from None

    @staticmethod
    def _env(request: web.Request) -> Env:
        env = request.match_info["env"]
        if env == "staging":
            return "staging"
        if env == "production":
            return "production"
        raise NotFound(f"no environment {env!r}; use one of {', '.join(ENVS)}")

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI document; like every call, it needs a valid token (any role)."""
        self._tokens.authenticate(request.headers.get(hdrs.AUTHORIZATION))
        return web.Response(body=openapi_json(), content_type="application/json")

    async def _messages(self, site: str, ids: list[str | None]) -> dict[str, str]:
        """The messages of these snapshots (``edge push -m``), for history and status."""
        return await self._store.snapshot_messages(site, [i for i in ids if i is not None])

    # -- sites ---------------------------------------------------------------------

    async def list_sites(self, request: web.Request) -> web.Response:
        """The sites this token may see, with their hosts, and who the token is."""
        principal = self._tokens.authenticate(request.headers.get(hdrs.AUTHORIZATION))
        if self._directory is None:
            raise NotFound("the site directory is not available")
        directory = self._directory()
        return json_response(
            SitesResponse(
                caller=Caller(
                    name=principal.name, role=principal.role, sites=sorted(principal.sites)
                ),
                visitor=directory.visitor,
                sites=[s for s in directory.sites if principal.sees(s.id)],
            )
        )

    # -- nodes ---------------------------------------------------------------------

    async def list_nodes(self, request: web.Request) -> web.Response:
        """The nodes sharing this store and the generation each serves (any valid token)."""
        self._tokens.authenticate(request.headers.get(hdrs.AUTHORIZATION))
        if self._cluster is None:
            return json_response(NodesResponse(backend="sqlite", generation=None, nodes=[]))
        generation, nodes = await self._cluster()
        return json_response(
            NodesResponse(
                backend="postgres",
                generation=generation,
                nodes=[
                    NodeDoc(
                        name=n.name,
                        generation=n.generation,
                        started_at=n.started_at,
                        seen_at=n.seen_at,
                        live=n.live,
                        current=n.live and n.generation >= generation,
                    )
                    for n in nodes
                ],
            )
        )

    # -- blobs ---------------------------------------------------------------------

    async def missing_blobs(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "editor")
        payload = decode(MissingBlobsRequest, await self._json_body(request))
        missing = await self._store.missing_blobs(site, payload.sha256)
        return json_response(MissingBlobsResponse(missing=missing))

    async def put_blob(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "editor")
        expected = request.match_info["sha256"]
        if len(expected) != 64 or not _SHA256_HEX.issuperset(expected):
            raise BadRequest("blob address must be a lowercase hex sha256")
        limit = self._max_blob_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"blobs are limited to {limit} bytes")
        async with self._uploads:
            # Streamed to a temporary file and hashed on the way: memory holds a
            # chunk, never the blob (edge.snapshots.blobfiles).
            created, size = await self._store.receive_blob(
                site, expected, request.content.iter_chunked(_BLOB_CHUNK), limit=limit
            )
        return json_response(BlobStored(sha256=expected, size=size), status=201 if created else 200)

    # -- snapshots -----------------------------------------------------------------

    async def create_snapshot(self, request: web.Request) -> web.Response:
        site, principal = self._authorize(request, "editor")
        # Decoded objects take several times the body: the body's size is the cost
        # (an unknown length counts as the largest body allowed).
        length = request.content_length
        cost = (length if length is not None else request.client_max_size) * DECODED_FACTOR
        async with self._budget.admit(cost):
            payload = decode(CreateSnapshotRequest, await self._json_body(request))
            snapshot = await self._control.create_snapshot(
                site,
                files={
                    path: NewFile(f.sha256, f.content_type, f.noindex)
                    for path, f in payload.files.items()
                },
                parent=payload.parent,
                delete=payload.delete,
                settings=payload.settings,
                message=payload.message,
                actor=principal.name,
            )
            del payload
        return json_response(_snapshot_summary(snapshot), status=201)

    async def list_snapshots(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "editor")
        limit = _int_query(request, "limit", 50, _MAX_PAGE)
        found = await self._store.list_snapshots(
            site, limit=limit, before=request.query.get("before")
        )
        more = len(found) == limit
        return json_response(SnapshotList(snapshots=found, next=found[-1].id if more else None))

    async def get_snapshot(self, request: web.Request) -> web.StreamResponse:
        site, _ = self._authorize(request, "editor")
        s = await self._control.snapshot(site, request.match_info["id"])
        head = SnapshotDetail(
            id=s.id,
            site=s.site,
            parent=s.parent,
            message=s.message,
            created_at=s.created_at,
            actor=s.actor,
            files={},
            file_count=len(s.files),
            settings=s.settings,
        )
        if len(s.files) <= STREAM_FILES_OVER:
            return json_response(msgspec.structs.replace(head, files=s.files))
        # A large manifest is sent in pieces, never encoded whole (same document).
        async with self._budget.admit(estimated_bytes(s)):
            return await stream_with_files(request, _encoder.encode(head), s.files)

    # -- environments --------------------------------------------------------------

    async def get_environments(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "editor")
        pointers = await self._control.pointers(site)
        messages = await self._messages(site, [p.snapshot for p in pointers.values()])
        return json_response(
            Environments(
                staging=_pointer_doc(pointers["staging"], messages),
                production=_pointer_doc(pointers["production"], messages),
            ),
            headers={hdrs.ETAG: environments_etag(pointers)},
        )

    async def put_environment(self, request: web.Request) -> web.Response:
        site, principal = self._authorize(request, _role_for(request, staging="editor"))
        env = self._env(request)
        payload = decode(SetEnvironmentRequest, await self._json_body(request))
        check = payload.expect is not msgspec.UNSET
        await self._control.set_environment(
            site,
            env,
            payload.snapshot,
            expect=None if isinstance(payload.expect, msgspec.UnsetType) else payload.expect,
            check_expect=check,
            action=payload.action,
            actor=principal.name,
            allow_empty=payload.allow_empty,
        )
        pointer = (await self._control.pointers(site))[env]
        doc = _pointer_doc(pointer, await self._messages(site, [pointer.snapshot]))
        if env == "staging":
            return json_response(EnvironmentSet(staging=doc))
        return json_response(EnvironmentSet(production=doc))

    async def publish(self, request: web.Request) -> web.StreamResponse:
        site, principal = self._authorize(request, "publisher")
        payload = decode(PublishRequest, await self._json_body(request))
        if payload.settings and payload.paths is None:
            raise BadRequest("'settings' goes with 'paths' (a whole publish includes settings)")
        if payload.dry_run:
            preview = await self._control.preview_publish(
                site,
                paths=payload.paths,
                settings=payload.settings,
                force=payload.force,
                if_match=request.headers.get(hdrs.IF_MATCH),
            )
            shown = PublishPreview(**preview.doc())
            lists = [(name, getattr(shown, name)) for name in _PREVIEW_LISTS]
            if sum(len(paths) for _, paths in lists) <= STREAM_FILES_OVER:
                return json_response(shown)
            # Every path of a large publish: encoded and sent in pieces (same document).
            head = msgspec.structs.replace(shown, **{name: [] for name in _PREVIEW_LISTS})
            return await stream_with_lists(
                request,
                _encoder.encode(head),
                [(name, functools.partial(iter, paths)) for name, paths in lists],
            )
        moved = await self._control.publish(
            site,
            actor=principal.name,
            paths=payload.paths,
            settings=payload.settings,
            force=payload.force,
            if_match=request.headers.get(hdrs.IF_MATCH),
        )
        answer = _moved_doc(moved)
        if payload.wait == "all":
            laggards = await self._control.wait_all(payload.wait_timeout)
            if laggards:
                raise NotPropagated(
                    f"published, but not yet served by {', '.join(laggards)}"
                    f" after {payload.wait_timeout:g}s",
                    laggards=laggards,
                    production=moved.to,
                    previous=moved.previous,
                    action=moved.action,
                )
        return json_response(answer)

    async def refresh(self, request: web.Request) -> web.Response:
        site, principal = self._authorize(request, "publisher")
        payload = decode(RefreshRequest, await self._json_body(request))
        moved = await self._control.refresh(
            site,
            actor=principal.name,
            force=payload.force,
            if_match=request.headers.get(hdrs.IF_MATCH),
        )
        return json_response(_moved_doc(moved))

    async def rollback(self, request: web.Request) -> web.Response:
        site, principal = self._authorize(request, "publisher")
        payload = decode(RollbackRequest, await self._json_body(request))
        moved = await self._control.rollback(
            site,
            actor=principal.name,
            to=payload.to,
            if_match=request.headers.get(hdrs.IF_MATCH),
        )
        return json_response(_moved_doc(moved))

    # -- retention -----------------------------------------------------------------

    async def gc(self, request: web.Request) -> web.Response:
        """Remove (or with ``dry_run`` count) what the retention policy no longer keeps."""
        site, _ = self._authorize(request, "admin")
        payload = decode(GcRequest, await self._json_body(request))
        done = await self._control.collect(site, dry_run=payload.dry_run)
        return json_response(
            GcResult(
                dry_run=done.dry_run, snapshots=done.snapshots, blobs=done.blobs, bytes=done.bytes
            )
        )

    # -- schedules -----------------------------------------------------------------

    async def add_schedule(self, request: web.Request) -> web.Response:
        site, principal = self._authorize(request, "publisher")
        payload = decode(ScheduleRequest, await self._json_body(request))
        if payload.settings and payload.paths is None:
            raise BadRequest("'settings' goes with 'paths' (a whole publish includes settings)")
        schedule = await self._control.add_schedule(
            site,
            at=parse_moment(payload.at),
            paths=payload.paths,
            settings=payload.settings,
            actor=principal.name,
        )
        return json_response(_schedule_doc(schedule), status=201)

    async def list_schedules(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "editor")
        status = request.query.get("status")
        if status not in (None, "pending", "done", "failed", "cancelled"):
            raise BadRequest("status is one of pending, done, failed, cancelled")
        limit = _int_query(request, "limit", 100, _MAX_PAGE)
        found = await self._store.list_schedules(site, status=status, limit=limit)
        return json_response(ScheduleList(schedules=[_schedule_doc(s) for s in found]))

    async def get_schedule(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "editor")
        found = await self._store.get_schedule(site, request.match_info["id"])
        if found is None:
            raise NotFound(f"site {site!r} has no schedule {request.match_info['id']!r}")
        return json_response(_schedule_doc(found))

    async def cancel_schedule(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "publisher")
        await self._control.cancel_schedule(site, request.match_info["id"])
        return web.Response(status=204)

    # -- history and diff ----------------------------------------------------------

    async def history(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "editor")
        env: Env | None = None
        match request.query.get("env") or None:
            case None:
                pass
            case "staging":
                env = "staging"
            case "production":
                env = "production"
            case _:
                raise BadRequest("env is staging or production")
        before = _int_query(request, "before", 0, _MAX_ID) or None
        limit = _int_query(request, "limit", 100, _MAX_PAGE)
        entries = await self._store.history(site, env=env, limit=limit, before=before)
        messages = await self._messages(site, [h.to for h in entries])
        more = len(entries) == limit
        docs = [
            HistoryDoc(
                id=h.id,
                at=h.at,
                env=h.env,
                from_=h.from_,
                to=h.to,
                action=h.action,
                actor=h.actor,
                message=messages.get(h.to, ""),
            )
            for h in entries
        ]
        return json_response(HistoryList(history=docs, next=entries[-1].id if more else None))

    async def diff(self, request: web.Request) -> web.StreamResponse:
        site, _ = self._authorize(request, "editor")
        from_ = request.query.get("from", "production")
        to = request.query.get("to", "staging")
        # Two manifests are compared: at most two large diffs at once.
        async with self._budget.admit(DIFF_COST):
            sides = await self._control.diff_sides(site, from_, to)
            lists = diff_lists(sides.old, sides.new)
            head = DiffResponse(
                from_=sides.from_,
                to=sides.to,
                added=[],
                removed=[],
                changed=[],
                settings_changed=sides.settings_changed,
            )
            if len(sides.old) + len(sides.new) <= STREAM_FILES_OVER:
                return json_response(
                    msgspec.structs.replace(head, **{name: make() for name, make in lists})
                )
            # Large manifests: each list made in its turn and sent in pieces.
            return await stream_with_lists(request, _encoder.encode(head), lists)

    # -- what stays per environment: inboxes, analytics, webhooks, previews ----------

    async def list_forms(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, _role_for(request, staging="editor"))
        env = self._env(request)
        limit = _int_query(request, "limit", 50, _MAX_PAGE)
        before = _int_query(request, "before", 0, _MAX_ID) or None
        # Bounded by bytes as well as count: a page of large submissions is never
        # read (or built) whole.
        page = await self._store.inbox_page(
            site,
            env,
            form=request.query.get("form"),
            limit=limit,
            before=before,
            max_bytes=INBOX_PAGE_BYTES,
        )
        found = page.submissions
        next_ = found[-1].id if page.more and found else None
        return json_response(FormSubmissionList(submissions=found, next=next_))

    async def delete_forms(self, request: web.Request) -> web.Response:
        """Empty an inbox, or the part of it before ``before`` (or of one ``form``)."""
        site, _ = self._authorize(request, "publisher")
        env = self._env(request)
        raw_before = request.query.get("before")
        before = None if raw_before is None else parse_moment(raw_before, name="before")
        deleted = await self._store.delete_form_submissions(
            site, env, before=before, form=request.query.get("form")
        )
        return json_response(FormsDeleted(deleted=deleted))

    async def delete_form(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "publisher")
        env = self._env(request)
        raw = request.match_info["id"]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 1 <= int(raw) < _MAX_ID:
            raise BadRequest(f"{raw!r} is not a submission id")
        if not await self._store.delete_form_submissions(site, env, submission=int(raw)):
            raise NotFound(f"the {env} inbox of {site} has no submission {raw}")
        return web.Response(status=204)

    async def analytics(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "editor")
        env = self._env(request)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        month_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86_400))
        first, last = request.query.get("from", month_ago), request.query.get("to", today)
        for name, day in (("from", first), ("to", last)):
            if not _DAY.fullmatch(day):
                raise BadRequest(f"{name} is a day like 2026-11-26")
        rows = await self._store.page_views(
            site,
            env,
            first_day=first,
            last_day=last,
            limit=_int_query(request, "limit", 10_000, 100_000),
        )
        days: dict[str, int] = {}
        for row in rows:
            days[row.day] = days.get(row.day, 0) + row.views
        return json_response(
            Analytics(
                env=env,
                from_=first,
                to=last,
                total=sum(days.values()),
                days=[DayViews(day=d, views=n) for d, n in sorted(days.items())],
                paths=rows,
            )
        )

    async def webhook_deliveries(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "publisher")
        env = self._env(request)
        limit = _int_query(request, "limit", 50, _MAX_PAGE)
        before = _int_query(request, "before", 0, _MAX_ID) or None
        items = await self._store.list_outbox(site, env, limit=limit, before=before)
        return json_response(
            DeliveryList(
                deliveries=[
                    Delivery(
                        id=i.id,
                        event=i.event,
                        url=i.url,
                        status=cast(DeliveryStatus, i.status),
                        attempts=i.attempts,
                        created_at=i.created_at,
                        delivered_at=i.delivered_at,
                        last_error=i.last_error,
                    )
                    for i in items
                ],
                next=items[-1].id if len(items) == limit else None,
            )
        )

    async def preview_link(self, request: web.Request) -> web.Response:
        site, _ = self._authorize(request, "editor")
        payload = decode(PreviewLinkRequest, await self._json_body(request))
        if self._signer is None or self._preview_url is None:
            raise NotFound("preview links are not available")
        snapshot_id = payload.snapshot
        if snapshot_id is None:
            snapshot_id = (await self._control.pointers(site))["staging"].snapshot
            if snapshot_id is None:
                raise Conflict("staging has no snapshot to preview")
        await self._control.snapshot(site, snapshot_id)  # 404 for an unknown one
        token = self._signer.sign(site, snapshot_id, payload.ttl)
        expires = int(time.time()) + payload.ttl
        # Collection keeps the snapshot while the link is valid.
        await self._store.add_preview_link(site, snapshot_id, expires + 1)
        return json_response(
            PreviewLink(
                url=self._preview_url(site, token),
                snapshot=snapshot_id,
                expires_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
            ),
            status=201,
        )


def _moved_doc(moved: Moved) -> Published | Refreshed:
    if moved.env == "staging":
        return Refreshed(staging=moved.to, previous=moved.previous, action=moved.action)
    return Published(production=moved.to, previous=moved.previous, action=moved.action)


def _schedule_doc(s: Schedule) -> ScheduleDoc:
    return ScheduleDoc(
        id=s.id,
        at=s.at,
        snapshot=s.snapshot,
        paths=s.paths,
        settings=s.settings,
        status=cast(ScheduleStatus, s.status),
        error=s.error,
        created_at=s.created_at,
        actor=s.actor,
        fired_at=s.fired_at,
    )


def create_admin_app(api: AdminApi, *, max_request_bytes: int) -> web.Application:
    """The admin aiohttp application (routes and the JSON error middleware)."""
    app = web.Application(middlewares=[error_middleware], client_max_size=max_request_bytes)
    app.router.add_get(OPENAPI_PATH, api.openapi)
    app.router.add_get("/v1/sites", api.list_sites)
    app.router.add_get("/v1/nodes", api.list_nodes)
    prefix = "/v1/sites/{site}"
    app.router.add_post(f"{prefix}/blobs/missing", api.missing_blobs)
    app.router.add_put(f"{prefix}/blobs/{{sha256}}", api.put_blob)
    app.router.add_post(f"{prefix}/snapshots", api.create_snapshot)
    app.router.add_get(f"{prefix}/snapshots", api.list_snapshots)
    app.router.add_get(f"{prefix}/snapshots/{{id}}", api.get_snapshot)
    app.router.add_get(f"{prefix}/environments", api.get_environments)
    app.router.add_put(f"{prefix}/environments/{{env}}", api.put_environment)
    app.router.add_post(f"{prefix}/publish", api.publish)
    app.router.add_post(f"{prefix}/refresh", api.refresh)
    app.router.add_post(f"{prefix}/rollback", api.rollback)
    app.router.add_post(f"{prefix}/schedules", api.add_schedule)
    app.router.add_get(f"{prefix}/schedules", api.list_schedules)
    app.router.add_get(f"{prefix}/schedules/{{id}}", api.get_schedule)
    app.router.add_delete(f"{prefix}/schedules/{{id}}", api.cancel_schedule)
    app.router.add_get(f"{prefix}/history", api.history)
    app.router.add_get(f"{prefix}/diff", api.diff)
    app.router.add_get(f"{prefix}/forms/{{env}}", api.list_forms)
    app.router.add_delete(f"{prefix}/forms/{{env}}", api.delete_forms)
    app.router.add_delete(f"{prefix}/forms/{{env}}/{{id}}", api.delete_form)
    app.router.add_get(f"{prefix}/analytics/{{env}}", api.analytics)
    app.router.add_get(f"{prefix}/webhooks/{{env}}", api.webhook_deliveries)
    app.router.add_post(f"{prefix}/preview-links", api.preview_link)
    app.router.add_post(f"{prefix}/gc", api.gc)
    add_ui_routes(app)  # the operator dashboard, /ui/ (static files, no data)
    return app
