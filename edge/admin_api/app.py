"""Admin API v1 handlers: read the request, call the core, write JSON.

Which call reaches which handler, and who may make it, is the table in
:mod:`edge.admin_api.operations`; the application is assembled in
:mod:`edge.admin_api.application`.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import msgspec
from aiohttp import hdrs, web

from edge.admin_api.budget import WorkBudget
from edge.admin_api.gate import CALLER
from edge.admin_api.openapi import openapi_json
from edge.admin_api.responses import ENCODER, json_response
from edge.admin_api.schemas import (
    Analytics,
    BlobStored,
    Caller,
    CreateSnapshotRequest,
    DayViews,
    Delivery,
    DeliveryList,
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
    SetEnvironmentRequest,
    SiteDirectory,
    SitesResponse,
    SnapshotDetail,
    SnapshotHead,
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
from edge.errors import (
    BadRequest,
    Conflict,
    NotFound,
    NotPropagated,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from edge.observability.metrics import CONTENT_TYPE
from edge.router import ENVS, Env
from edge.snapshots.control import Control, Moved, NewFile
from edge.snapshots.live import estimated_bytes
from edge.snapshots.model import NodeState, Pointer, Schedule
from edge.snapshots.promotion import environments_etag
from edge.snapshots.schedule import parse_moment
from edge.snapshots.store import Store
from edge.visitor.preview import PreviewSigner

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

T = TypeVar("T")


class _Move(Protocol):
    """A pointer move of :class:`Control` with its options bound (refresh, rollback)."""

    def __call__(self, site: str, *, actor: str, if_match: str | None) -> Awaitable[Moved]: ...


def _pointer_doc(p: Pointer, messages: dict[str, str]) -> PointerDoc:
    message = None if p.snapshot is None else messages.get(p.snapshot)
    return PointerDoc(**_fields(p, PointerDoc), message=message)


def _fields(source: msgspec.Struct, answer: type[msgspec.Struct]) -> dict[str, Any]:
    """The fields ``source`` shares with the Struct ``answer``, by name (to build it from)."""
    have = {f.name for f in msgspec.structs.fields(source)}
    return {
        f.name: getattr(source, f.name) for f in msgspec.structs.fields(answer) if f.name in have
    }


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


@dataclass(eq=False, slots=True, kw_only=True)
class AdminApi:
    """The v1 handlers, bound to one process's control and store.

    A handler runs once the gate (:mod:`edge.admin_api.gate`) has admitted the
    caller for its operation (:mod:`edge.admin_api.operations`): it reads the
    request, calls the core and writes the answer.
    """

    control: Control
    store: Store
    max_blob_bytes: int
    signer: PreviewSigner | None = None
    preview_url: PreviewUrl | None = None
    directory: Callable[[], SiteDirectory] | None = None
    cluster: ClusterView | None = None  # None: the single-machine SQLite store
    # Large snapshot bodies, manifests and diffs: two at a time, within a byte
    # budget (edge.admin_api.budget).
    budget: WorkBudget = field(default_factory=lambda: WorkBudget(DEFAULT_WORK_BYTES))
    # The Prometheus text of the whole edge (edge.observability.admin.Scrape).
    scrape: Callable[[], Awaitable[bytes]] | None = None
    # Uploads streaming to disk at once (each holds a chunk in memory and a
    # temporary file): a bound on what concurrent uploads can take.
    uploads: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(_PARALLEL_UPLOADS))

    # -- plumbing ------------------------------------------------------------------

    @staticmethod
    async def _payload(request: web.Request, payload_type: type[T]) -> T:
        """The JSON body decoded into ``payload_type`` (415, 413 or 400 otherwise)."""
        ctype = request.headers.get(hdrs.CONTENT_TYPE, "application/json")
        media = ctype.partition(";")[0].strip().lower()
        if request.can_read_body and media != "application/json":
            raise UnsupportedMediaType("request bodies are application/json")
        if (request.content_length or 0) > request.client_max_size:  # refused before reading
            raise PayloadTooLarge(f"request body over {request.client_max_size} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(f"request body over {request.client_max_size} bytes") from None
        return decode(payload_type, body)

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
        return web.Response(body=openapi_json(), content_type="application/json")

    async def metrics(self, request: web.Request) -> web.Response:
        """The Prometheus text exposition of every worker and site."""
        if self.scrape is None:
            raise NotFound("metrics are not available")
        return web.Response(body=await self.scrape(), headers={hdrs.CONTENT_TYPE: CONTENT_TYPE})

    async def _messages(self, site: str, ids: list[str | None]) -> dict[str, str]:
        """The messages of these snapshots (``edge push -m``), for history and status."""
        return await self.store.snapshot_messages(site, [i for i in ids if i is not None])

    # -- sites ---------------------------------------------------------------------

    async def list_sites(self, request: web.Request) -> web.Response:
        """The sites this token may see, with their hosts, and who the token is."""
        principal = request[CALLER]
        if self.directory is None:
            raise NotFound("the site directory is not available")
        directory = self.directory()
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
        if self.cluster is None:
            return json_response(NodesResponse(backend="sqlite", generation=None, nodes=[]))
        generation, nodes = await self.cluster()
        return json_response(
            NodesResponse(
                backend="postgres",
                generation=generation,
                nodes=[
                    NodeDoc(**_fields(n, NodeDoc), current=n.live and n.generation >= generation)
                    for n in nodes
                ],
            )
        )

    # -- blobs ---------------------------------------------------------------------

    async def missing_blobs(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        payload = await self._payload(request, MissingBlobsRequest)
        missing = await self.store.missing_blobs(site, payload.sha256)
        return json_response(MissingBlobsResponse(missing=missing))

    async def put_blob(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        expected = request.match_info["sha256"]
        if len(expected) != 64 or not _SHA256_HEX.issuperset(expected):
            raise BadRequest("blob address must be a lowercase hex sha256")
        limit = self.max_blob_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"blobs are limited to {limit} bytes")
        async with self.uploads:
            # Streamed to a temporary file and hashed on the way: memory holds a
            # chunk, never the blob (edge.snapshots.blobfiles).
            created, size = await self.store.receive_blob(
                site, expected, request.content.iter_chunked(_BLOB_CHUNK), limit=limit
            )
        return json_response(BlobStored(sha256=expected, size=size), status=201 if created else 200)

    # -- snapshots -----------------------------------------------------------------

    async def create_snapshot(self, request: web.Request) -> web.Response:
        site, principal = request.match_info["site"], request[CALLER]
        # Decoded objects take several times the body: the body's size is the cost
        # (an unknown length counts as the largest body allowed).
        length = request.content_length
        cost = (length if length is not None else request.client_max_size) * DECODED_FACTOR
        async with self.budget.admit(cost):
            payload = await self._payload(request, CreateSnapshotRequest)
            snapshot = await self.control.create_snapshot(
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
        summary = SnapshotSummary(**_fields(snapshot, SnapshotHead), files=len(snapshot.files))
        return json_response(summary, status=201)

    async def list_snapshots(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        limit = _int_query(request, "limit", 50, _MAX_PAGE)
        found = await self.store.list_snapshots(
            site, limit=limit, before=request.query.get("before")
        )
        more = len(found) == limit
        return json_response(SnapshotList(snapshots=found, next=found[-1].id if more else None))

    async def get_snapshot(self, request: web.Request) -> web.StreamResponse:
        site = request.match_info["site"]
        s = await self.control.snapshot(site, request.match_info["id"])
        head = SnapshotDetail(
            **_fields(s, SnapshotHead), files={}, file_count=len(s.files), settings=s.settings
        )
        if len(s.files) <= STREAM_FILES_OVER:
            return json_response(msgspec.structs.replace(head, files=s.files))
        # A large manifest is sent in pieces, never encoded whole (same document).
        async with self.budget.admit(estimated_bytes(s)):
            return await stream_with_files(request, ENCODER.encode(head), s.files)

    # -- environments --------------------------------------------------------------

    async def get_environments(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        pointers = await self.control.pointers(site)
        messages = await self._messages(site, [p.snapshot for p in pointers.values()])
        return json_response(
            Environments(
                staging=_pointer_doc(pointers["staging"], messages),
                production=_pointer_doc(pointers["production"], messages),
            ),
            headers={hdrs.ETAG: environments_etag(pointers)},
        )

    async def set_environment(self, request: web.Request) -> web.Response:
        site, principal = request.match_info["site"], request[CALLER]
        env = self._env(request)
        payload = await self._payload(request, SetEnvironmentRequest)
        check = payload.expect is not msgspec.UNSET
        await self.control.set_environment(
            site,
            env,
            payload.snapshot,
            expect=None if isinstance(payload.expect, msgspec.UnsetType) else payload.expect,
            check_expect=check,
            action=payload.action,
            actor=principal.name,
            allow_empty=payload.allow_empty,
        )
        pointer = (await self.control.pointers(site))[env]
        doc = _pointer_doc(pointer, await self._messages(site, [pointer.snapshot]))
        if env == "staging":
            return json_response(EnvironmentSet(staging=doc))
        return json_response(EnvironmentSet(production=doc))

    async def publish(self, request: web.Request) -> web.StreamResponse:
        site, principal = request.match_info["site"], request[CALLER]
        payload = await self._payload(request, PublishRequest)
        if payload.settings and payload.paths is None:
            raise BadRequest("'settings' goes with 'paths' (a whole publish includes settings)")
        if payload.dry_run:
            preview = await self.control.preview_publish(
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
                ENCODER.encode(head),
                [(name, functools.partial(iter, paths)) for name, paths in lists],
            )
        moved = await self.control.publish(
            site,
            actor=principal.name,
            paths=payload.paths,
            settings=payload.settings,
            force=payload.force,
            if_match=request.headers.get(hdrs.IF_MATCH),
        )
        answer = _moved_doc(moved)
        if payload.wait == "all":
            laggards = await self.control.wait_all(payload.wait_timeout)
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
        payload = await self._payload(request, RefreshRequest)
        refresh = functools.partial(self.control.refresh, force=payload.force)
        return await self._move(request, refresh)

    async def rollback(self, request: web.Request) -> web.Response:
        payload = await self._payload(request, RollbackRequest)
        rollback = functools.partial(self.control.rollback, to=payload.to)
        return await self._move(request, rollback)

    @staticmethod
    async def _move(request: web.Request, move: _Move) -> web.Response:
        """A pointer move by the caller, conditional on If-Match, and where it went."""
        moved = await move(
            request.match_info["site"],
            actor=request[CALLER].name,
            if_match=request.headers.get(hdrs.IF_MATCH),
        )
        return json_response(_moved_doc(moved))

    # -- retention -----------------------------------------------------------------

    async def collect_garbage(self, request: web.Request) -> web.Response:
        """Remove (or with ``dry_run`` count) what the retention policy no longer keeps."""
        site = request.match_info["site"]
        payload = await self._payload(request, GcRequest)
        done = await self.control.collect(site, dry_run=payload.dry_run)
        return json_response(
            GcResult(
                dry_run=done.dry_run, snapshots=done.snapshots, blobs=done.blobs, bytes=done.bytes
            )
        )

    # -- schedules -----------------------------------------------------------------

    async def add_schedule(self, request: web.Request) -> web.Response:
        site, principal = request.match_info["site"], request[CALLER]
        payload = await self._payload(request, ScheduleRequest)
        if payload.settings and payload.paths is None:
            raise BadRequest("'settings' goes with 'paths' (a whole publish includes settings)")
        schedule = await self.control.add_schedule(
            site,
            at=parse_moment(payload.at),
            paths=payload.paths,
            settings=payload.settings,
            actor=principal.name,
        )
        return json_response(_schedule_doc(schedule), status=201)

    async def list_schedules(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        status = request.query.get("status")
        if status not in (None, "pending", "done", "failed", "cancelled"):
            raise BadRequest("status is one of pending, done, failed, cancelled")
        limit = _int_query(request, "limit", 100, _MAX_PAGE)
        found = await self.store.list_schedules(site, status=status, limit=limit)
        return json_response(ScheduleList(schedules=[_schedule_doc(s) for s in found]))

    async def get_schedule(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        found = await self.store.get_schedule(site, request.match_info["id"])
        if found is None:
            raise NotFound(f"site {site!r} has no schedule {request.match_info['id']!r}")
        return json_response(_schedule_doc(found))

    async def cancel_schedule(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        await self.control.cancel_schedule(site, request.match_info["id"])
        return web.Response(status=204)

    # -- history and diff ----------------------------------------------------------

    async def history(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
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
        entries = await self.store.history(site, env=env, limit=limit, before=before)
        messages = await self._messages(site, [h.to for h in entries])
        more = len(entries) == limit
        docs = [
            HistoryDoc(**_fields(h, HistoryDoc), message=messages.get(h.to, "")) for h in entries
        ]
        return json_response(HistoryList(history=docs, next=entries[-1].id if more else None))

    async def diff(self, request: web.Request) -> web.StreamResponse:
        site = request.match_info["site"]
        from_ = request.query.get("from", "production")
        to = request.query.get("to", "staging")
        # Two manifests are compared: at most two large diffs at once.
        async with self.budget.admit(DIFF_COST):
            sides = await self.control.diff_sides(site, from_, to)
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
            return await stream_with_lists(request, ENCODER.encode(head), lists)

    # -- what stays per environment: inboxes, analytics, webhooks, previews ----------

    async def list_forms(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        env = self._env(request)
        limit = _int_query(request, "limit", 50, _MAX_PAGE)
        before = _int_query(request, "before", 0, _MAX_ID) or None
        # Bounded by bytes as well as count: a page of large submissions is never
        # read (or built) whole.
        page = await self.store.inbox_page(
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
        site = request.match_info["site"]
        env = self._env(request)
        raw_before = request.query.get("before")
        before = None if raw_before is None else parse_moment(raw_before, name="before")
        deleted = await self.store.delete_form_submissions(
            site, env, before=before, form=request.query.get("form")
        )
        return json_response(FormsDeleted(deleted=deleted))

    async def delete_form_submission(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        env = self._env(request)
        raw = request.match_info["id"]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 1 <= int(raw) < _MAX_ID:
            raise BadRequest(f"{raw!r} is not a submission id")
        if not await self.store.delete_form_submissions(site, env, submission=int(raw)):
            raise NotFound(f"the {env} inbox of {site} has no submission {raw}")
        return web.Response(status=204)

    async def analytics(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        env = self._env(request)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        month_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86_400))
        first, last = request.query.get("from", month_ago), request.query.get("to", today)
        for name, day in (("from", first), ("to", last)):
            if not _DAY.fullmatch(day):
                raise BadRequest(f"{name} is a day like 2026-11-26")
        rows = await self.store.page_views(
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
        site = request.match_info["site"]
        env = self._env(request)
        limit = _int_query(request, "limit", 50, _MAX_PAGE)
        before = _int_query(request, "before", 0, _MAX_ID) or None
        items = await self.store.list_outbox(site, env, limit=limit, before=before)
        return json_response(
            DeliveryList(
                deliveries=[Delivery(**_fields(i, Delivery)) for i in items],
                next=items[-1].id if len(items) == limit else None,
            )
        )

    async def create_preview_link(self, request: web.Request) -> web.Response:
        site = request.match_info["site"]
        payload = await self._payload(request, PreviewLinkRequest)
        if self.signer is None or self.preview_url is None:
            raise NotFound("preview links are not available")
        snapshot_id = payload.snapshot
        if snapshot_id is None:
            snapshot_id = (await self.control.pointers(site))["staging"].snapshot
            if snapshot_id is None:
                raise Conflict("staging has no snapshot to preview")
        await self.control.snapshot(site, snapshot_id)  # 404 for an unknown one
        token = self.signer.sign(site, snapshot_id, payload.ttl)
        expires = int(time.time()) + payload.ttl
        # Collection keeps the snapshot while the link is valid.
        await self.store.add_preview_link(site, snapshot_id, expires + 1)
        return json_response(
            PreviewLink(
                url=self.preview_url(site, token),
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
    return ScheduleDoc(**_fields(s, ScheduleDoc))
