"""The operator dashboard: static files served by the admin listener under ``/ui/``.

The files (``edge/admin_api/ui/``: HTML, CSS and plain ES modules, no build step)
hold no data and need no token; the page asks the operator for an admin token,
keeps it in ``sessionStorage`` and calls the ``/v1`` API with it like any client.
They are read once, when the admin app is built, and served from memory with a
strict Content-Security-Policy (scripts and styles from this origin only, nothing
inline, no framing, no form posts) so that a site's content shown by the page
can never run as script in it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import hdrs, web

from edge.errors import NotFound

UI_PREFIX = "/ui/"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The page links to the sites' hosts: they learn nothing about the admin URL.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidated on every load (cheap: 304), so an upgraded edge serves its own files.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class UiFile:
    body: bytes
    content_type: str
    etag: str


def load_ui_files() -> dict[str, UiFile]:
    """Every servable file of the ``ui`` folder (installed as package data), by name."""
    folder = resources.files("edge.admin_api").joinpath("ui")
    files: dict[str, UiFile] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES and not entry.name.startswith("."):
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
            files[entry.name] = UiFile(body, _TYPES[suffix], etag)
    if "index.html" not in files:
        raise RuntimeError(f"the dashboard's files are missing from {folder}")
    return files


def _serve(request: web.Request, file: UiFile) -> web.Response:
    headers = {**SECURITY_HEADERS, hdrs.ETAG: file.etag}
    if file.etag in (t.strip() for t in request.headers.get(hdrs.IF_NONE_MATCH, "").split(",")):
        return web.Response(status=304, headers=headers)
    headers[hdrs.CONTENT_TYPE] = file.content_type
    return web.Response(body=file.body, headers=headers)


def add_ui_routes(app: web.Application) -> None:
    """``/ui/`` (the page), ``/ui/<file>`` (its assets) and ``/ui`` -> 308 ``/ui/``."""
    files = load_ui_files()

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=308, headers={**SECURITY_HEADERS, hdrs.LOCATION: UI_PREFIX})

    async def index(request: web.Request) -> web.Response:
        return _serve(request, files["index.html"])

    async def asset(request: web.Request) -> web.Response:
        # A lookup in the files read at start-up: no path ever reaches the filesystem.
        found = files.get(request.match_info["name"])
        if found is None:
            raise NotFound(f"the dashboard has no file {request.match_info['name']!r}")
        return _serve(request, found)

    app.router.add_get(UI_PREFIX.rstrip("/"), redirect)
    app.router.add_get(UI_PREFIX, index)
    app.router.add_get(UI_PREFIX + "{name}", asset)
