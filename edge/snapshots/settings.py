"""A snapshot's settings: the schema checked at creation, and its compiled form.

Settings travel with content: the proxy applies the settings of the snapshot it
is serving, so a changed redirect or header reaches production only when it is
published. Pure: documents in, frozen structures out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from edge.errors import BadRequest, validation_detail
from edge.paths import normalize_path
from edge.snapshots.headers import is_safe_target as is_safe_target  # re-exported
from edge.snapshots.headers import normal_name, settable_problem
from edge.snapshots.immutable import DEFAULT_PREFIXES, is_immutable
from edge.snapshots.rules import HeaderTable, RedirectTable, request_forms
from edge.snapshots.sitefiles import HeaderBlock, RedirectRule

MAX_FORM_BYTES = 1024 * 1024
# Limits on one settings document (docs/limits.md): its encoded size, and rules.
MAX_SETTINGS_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 10_000
MAX_HEADER_RULES = 1_000  # path prefixes under settings.headers
MAX_HEADERS_PER_RULE = 50
MAX_PREFIX_LENGTH = 1_024
MAX_FORMS = 100
MAX_FORM_RATE = 6_000  # posts a minute per client, the most a form may allow
# msgspec checks patterns with re.search: "\Z", not "$" (which matches before a final "\n").
_FORM_NAME = r"^[A-Za-z0-9_-]{1,64}\Z"
_FORM_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Response headers a snapshot may not set: framing and hop-by-hop headers, what
# edge itself decides (noindex, environment, validators), and credentials.
REFUSED_HEADERS = frozenset(
    {
        "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authenticate", "proxy-authorization", "content-length", "content-encoding",
        "content-type", "content-range", "accept-ranges", "etag", "last-modified", "vary",
        "location", "set-cookie", "authorization", "www-authenticate", "host", "date",
        "server", "x-robots-tag", "strict-transport-security", "retry-after",
    }
)  # fmt: skip


class _Doc(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


_encoder = msgspec.json.Encoder()


class Redirect(_Doc, frozen=True):
    from_: str = msgspec.field(name="from")
    to: str
    status: Literal[301, 302, 307, 308] = 301


class FormSettings(_Doc, frozen=True):
    redirect: str | None = None  # where the visitor goes after posting (303); else 204
    fields: list[Annotated[str, msgspec.Meta(min_length=1, max_length=100)]] | None = None
    max_bytes: Annotated[int, msgspec.Meta(gt=0, le=MAX_FORM_BYTES)] = 64 * 1024
    max_fields: Annotated[int, msgspec.Meta(gt=0, le=1000)] = 50
    # Posts per client (address) and minute, and how many at once; unset: the
    # server's [server] form_rate_per_minute / form_burst.
    rate_per_minute: Annotated[float, msgspec.Meta(gt=0, le=MAX_FORM_RATE)] | None = None
    burst: Annotated[int, msgspec.Meta(ge=1, le=MAX_FORM_RATE)] | None = None


_PrefixHeaders = Annotated[dict[str, str], msgspec.Meta(max_length=MAX_HEADERS_PER_RULE)]


class FileRedirect(_Doc, frozen=True):
    line: int
    from_: str = msgspec.field(name="from")
    to: str
    status: int = 301
    force: bool = False


class FileHeaders(_Doc, frozen=True):
    line: int
    path: str
    headers: list[tuple[str, str]]


class FromFiles(_Doc, frozen=True):
    """``_redirects`` and ``_headers`` as parsed at snapshot creation (edge.snapshots.sitefiles).

    Derived from the snapshot's files: edge writes it, whatever a request sends.
    """

    redirects: list[FileRedirect] = []
    headers: list[FileHeaders] = []


class ImmutableSettings(_Doc, frozen=True):
    """Which production paths get ``Cache-Control: ..., immutable`` (edge.snapshots.immutable)."""

    hashed_names: bool = True
    prefixes: Annotated[list[str], msgspec.Meta(max_length=100)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_PREFIXES)
    )


class SiteSettings(_Doc, frozen=True):
    redirects: Annotated[list[Redirect], msgspec.Meta(max_length=MAX_REDIRECTS)] = []
    headers: Annotated[dict[str, _PrefixHeaders], msgspec.Meta(max_length=MAX_HEADER_RULES)] = {}
    forms: Annotated[
        dict[Annotated[str, msgspec.Meta(pattern=_FORM_NAME)], FormSettings],
        msgspec.Meta(max_length=MAX_FORMS),
    ] = {}
    media_prefix: str = "/media/"
    immutable: ImmutableSettings = msgspec.field(default_factory=ImmutableSettings)
    from_files: FromFiles | None = None


def validate_settings(doc: dict[str, Any]) -> SiteSettings:
    """Check a settings document; 400 naming the key on any problem."""
    size = len(_encoder.encode(doc))
    if size > MAX_SETTINGS_BYTES:
        raise BadRequest(f"settings: {size} bytes of JSON; at most {MAX_SETTINGS_BYTES}")
    try:
        settings = msgspec.convert(doc, SiteSettings)
    except msgspec.ValidationError as exc:
        where, message = validation_detail(exc)
        key = f"settings.{where}" if where and not where.startswith("[") else f"settings{where}"
        raise BadRequest(f"{key}: {message}") from None
    for i, r in enumerate(settings.redirects):
        if not r.from_.startswith("/") or normalize_path(r.from_) != r.from_:
            raise BadRequest(f"settings.redirects[{i}].from: not a clean path: {r.from_!r}")
        if not is_safe_target(r.to):
            raise BadRequest(
                f"settings.redirects[{i}].to: a path like '/new' or an http(s) URL, got {r.to!r}"
            )
    for prefix, headers in settings.headers.items():
        if not prefix.startswith("/") or len(prefix) > MAX_PREFIX_LENGTH:
            raise BadRequest(
                f"settings.headers.{prefix!r}: a path prefix starts with '/' and has at most"
                f" {MAX_PREFIX_LENGTH} characters"
            )
        seen: set[str] = set()
        for name, value in headers.items():
            key = f"settings.headers.{prefix}.{name!r}"
            problem = settable_problem(name, value, REFUSED_HEADERS)
            if problem is not None:
                raise BadRequest(f"{key}: {problem}")
            normal = normal_name(name)
            if normal in seen:
                raise BadRequest(f"{key}: set twice (header names are case-insensitive)")
            seen.add(normal)
    for name, form in settings.forms.items():
        if not _FORM_NAME_RE.fullmatch(name):
            raise BadRequest(f"settings.forms.{name!r}: a form name is 1-64 of A-Z a-z 0-9 _ -")
        if form.redirect is not None and not is_safe_target(form.redirect):
            raise BadRequest(f"settings.forms.{name}.redirect: a path or an http(s) URL")
    for i, prefix in enumerate(settings.immutable.prefixes):
        if not prefix.startswith("/") or normalize_path(prefix) != prefix:
            raise BadRequest(f"settings.immutable.prefixes[{i}]: a path prefix like '/_astro/'")
    mp = settings.media_prefix
    if not (mp.startswith("/") and mp.endswith("/")) or normalize_path(mp) != mp:
        raise BadRequest(f"settings.media_prefix: a path prefix like '/media/', got {mp!r}")
    return settings


@dataclass(frozen=True, slots=True)
class HeaderRules:
    """``settings.headers`` compiled: prefixes in dictionaries, grouped by shape.

    Prefixes ending in ``/`` (nearly all of them: ``/assets/``, ``/blog/``) are
    looked up by slicing the path at each of its own ``/``: as many lookups as the
    path has segments. The others are grouped by length and looked up by slicing
    the path at each distinct length. Either way the cost grows with the path
    (segments, distinct lengths of the odd prefixes), never with the number of
    rules; matches apply shortest first, so longer prefixes win.
    """

    by_dir: dict[str, dict[str, str]] = field(default_factory=dict)
    by_prefix: dict[str, dict[str, str]] = field(default_factory=dict)  # not ending in "/"
    lengths: tuple[int, ...] = ()  # distinct lengths of by_prefix keys, ascending

    @classmethod
    def compile(cls, headers: dict[str, dict[str, str]]) -> HeaderRules:
        by_dir = {p: dict(v) for p, v in headers.items() if p.endswith("/")}
        by_prefix = {p: dict(v) for p, v in headers.items() if not p.endswith("/")}
        return cls(
            by_dir=by_dir,
            by_prefix=by_prefix,
            lengths=tuple(sorted({len(prefix) for prefix in by_prefix})),
        )

    @property
    def prefixes(self) -> list[str]:
        return [*self.by_dir, *self.by_prefix]

    def headers_for(self, path: str) -> dict[str, str]:
        found: list[tuple[int, dict[str, str]]] = []
        by_dir = self.by_dir
        if by_dir:
            cut = path.find("/")
            while cut != -1:
                hit = by_dir.get(path[: cut + 1])
                if hit is not None:
                    found.append((cut + 1, hit))
                cut = path.find("/", cut + 1)
        if self.lengths:
            by_prefix, size = self.by_prefix, len(path)
            for length in self.lengths:
                if length > size:
                    break
                hit = by_prefix.get(path[:length])
                if hit is not None:
                    found.append((length, hit))
            found.sort(key=lambda match: match[0])
        extra: dict[str, str] = {}
        for _, headers in found:
            extra.update(headers)
        return extra


@dataclass(frozen=True, slots=True)
class CompiledSettings:
    """Settings as the proxy uses them: dictionaries, built once per snapshot."""

    redirects: dict[str, tuple[str, int]] = field(default_factory=dict)
    header_rules: HeaderRules = field(default_factory=HeaderRules)
    forms: dict[str, FormSettings] = field(default_factory=dict)
    media_prefix: str = "/media/"
    file_redirects: RedirectTable | None = None  # _redirects
    file_headers: HeaderTable | None = None  # _headers
    immutable_names: bool = True
    immutable_prefixes: tuple[str, ...] = DEFAULT_PREFIXES

    def headers_for(self, path: str) -> dict[str, str]:
        """Extra headers for manifest ``path``: ``settings.headers`` (every matching
        prefix, longer prefixes win), then ``_headers`` (every matching block, by the
        paths that request this file), whose names replace the former's.
        """
        extra = self.header_rules.headers_for(path)
        if self.file_headers is not None:
            from_file = self.file_headers.headers_for(request_forms(path))
            if from_file:
                lowered = {name.lower() for name in from_file}
                extra = {n: v for n, v in extra.items() if n.lower() not in lowered}
                extra.update(from_file)
        return extra

    def immutable(self, path: str) -> bool:
        """Whether production serves manifest ``path`` as an immutable asset."""
        return is_immutable(
            path, hashed_names=self.immutable_names, prefixes=self.immutable_prefixes
        )


EMPTY_SETTINGS = CompiledSettings()


def compile_settings(doc: dict[str, Any]) -> CompiledSettings:
    """The compiled form of an already validated settings document."""
    if not doc:
        return EMPTY_SETTINGS
    try:
        settings = msgspec.convert(doc, SiteSettings)
    except msgspec.ValidationError:
        # Written before settings had a schema: serve the content, ignore the settings.
        return EMPTY_SETTINGS
    files = settings.from_files
    file_redirects = file_headers = None
    if files is not None and files.redirects:
        file_redirects = RedirectTable(
            [RedirectRule(r.line, r.from_, r.to, r.status, r.force) for r in files.redirects]
        )
    if files is not None and files.headers:
        file_headers = HeaderTable(
            [HeaderBlock(b.line, b.path, tuple(b.headers)) for b in files.headers]
        )
    return CompiledSettings(
        redirects={r.from_: (r.to, r.status) for r in settings.redirects},
        header_rules=HeaderRules.compile(settings.headers),
        forms=dict(settings.forms),
        media_prefix=settings.media_prefix,
        file_redirects=file_redirects,
        file_headers=file_headers,
        immutable_names=settings.immutable.hashed_names,
        immutable_prefixes=tuple(settings.immutable.prefixes),
    )
