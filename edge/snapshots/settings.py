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

MAX_FORM_BYTES = 1024 * 1024
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_FORM_NAME = r"^[A-Za-z0-9_-]{1,64}$"
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


class Redirect(_Doc, frozen=True):
    from_: str = msgspec.field(name="from")
    to: str
    status: Literal[301, 302, 307, 308] = 301


class FormSettings(_Doc, frozen=True):
    redirect: str | None = None  # where the visitor goes after posting (303); else 204
    fields: list[Annotated[str, msgspec.Meta(min_length=1, max_length=100)]] | None = None
    max_bytes: Annotated[int, msgspec.Meta(gt=0, le=MAX_FORM_BYTES)] = 64 * 1024
    max_fields: Annotated[int, msgspec.Meta(gt=0, le=1000)] = 50


class SiteSettings(_Doc, frozen=True):
    redirects: Annotated[list[Redirect], msgspec.Meta(max_length=10_000)] = []
    headers: dict[str, dict[str, str]] = {}
    forms: dict[Annotated[str, msgspec.Meta(pattern=_FORM_NAME)], FormSettings] = {}
    media_prefix: str = "/media/"


def is_safe_target(target: str) -> bool:
    """A redirect target: a local path (never ``//host`` or ``/\\host``) or an http(s) URL."""
    # Browsers drop tabs and newlines from URLs ("/\t/evil" is "//evil"): no
    # whitespace or control character at all.
    if _UNSAFE_TARGET.search(target) or "\\" in target:
        return False
    if target.startswith("/"):
        return not target.startswith("//")
    scheme, sep, rest = target.partition("://")
    return bool(sep) and scheme.lower() in ("http", "https") and bool(rest) and rest[0] != "/"


def validate_settings(doc: dict[str, Any]) -> SiteSettings:
    """Check a settings document; 400 naming the key on any problem."""
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
        if not prefix.startswith("/"):
            raise BadRequest(f"settings.headers.{prefix}: a path prefix starts with '/'")
        for name, value in headers.items():
            if not _HEADER_NAME.match(name) or name.lower() in REFUSED_HEADERS:
                raise BadRequest(f"settings.headers.{prefix}.{name}: this header cannot be set")
            if name.lower().startswith("x-edge-") or _UNSAFE_VALUE.search(value):
                raise BadRequest(f"settings.headers.{prefix}.{name}: refused name or value")
            if len(value) > 2048:
                raise BadRequest(f"settings.headers.{prefix}.{name}: value too long")
    for name, form in settings.forms.items():
        if form.redirect is not None and not is_safe_target(form.redirect):
            raise BadRequest(f"settings.forms.{name}.redirect: a path or an http(s) URL")
    mp = settings.media_prefix
    if not (mp.startswith("/") and mp.endswith("/")) or normalize_path(mp) != mp:
        raise BadRequest(f"settings.media_prefix: a path prefix like '/media/', got {mp!r}")
    return settings


@dataclass(frozen=True, slots=True)
class CompiledSettings:
    """Settings as the proxy uses them: dictionaries, built once per snapshot."""

    redirects: dict[str, tuple[str, int]] = field(default_factory=dict)
    header_rules: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    forms: dict[str, FormSettings] = field(default_factory=dict)
    media_prefix: str = "/media/"

    def headers_for(self, path: str) -> dict[str, str]:
        """Extra headers for ``path``: every matching prefix, longer prefixes win."""
        extra: dict[str, str] = {}
        for prefix, headers in self.header_rules:
            if path.startswith(prefix):
                extra.update(headers)
        return extra


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
    return CompiledSettings(
        redirects={r.from_: (r.to, r.status) for r in settings.redirects},
        header_rules=tuple(
            (prefix, tuple(headers.items()))
            for prefix, headers in sorted(settings.headers.items(), key=lambda kv: len(kv[0]))
        ),
        forms=dict(settings.forms),
        media_prefix=settings.media_prefix,
    )
