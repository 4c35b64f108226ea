"""The admin routes as the server really registers them, and the roles SPEC §4 gives them.

:func:`registered_routes` builds the admin application exactly as ``edge serve``
does (:func:`edge.server.build_admin_app` on an opened runtime) and reads its
router, so a route added anywhere, in ``app.py`` or in ``server.py``, shows up
here; the tests that use it then fail until the route is given a role in
:data:`SPEC_ROLES` and an operation in the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path

from edge.admin_api.auth import new_token
from edge.config import Role, load_config
from edge.server import build_admin_app, open_runtime
from tests.integration.conftest import ROLES, EdgeServer

SITE = "/v1/sites/{site}"
# SPEC §4: editors upload, create snapshots and move staging; publishers also
# publish, schedule, refresh, roll back and move production; any valid token
# reads the OpenAPI document. A pair is (staging, production) for {env} routes.
SPEC_ROLES: dict[tuple[str, str], Role | tuple[Role, Role] | None] = {
    ("GET", "/v1/openapi.json"): None,
    ("GET", "/metrics"): None,
    ("GET", "/v1/sites"): None,
    ("GET", "/v1/nodes"): None,
    ("POST", f"{SITE}/blobs/missing"): "editor",
    ("PUT", f"{SITE}/blobs/{{sha256}}"): "editor",
    ("POST", f"{SITE}/snapshots"): "editor",
    ("GET", f"{SITE}/snapshots"): "editor",
    ("GET", f"{SITE}/snapshots/{{id}}"): "editor",
    ("GET", f"{SITE}/environments"): "editor",
    ("PUT", f"{SITE}/environments/{{env}}"): ("editor", "publisher"),
    ("POST", f"{SITE}/publish"): "publisher",
    ("POST", f"{SITE}/refresh"): "publisher",
    ("POST", f"{SITE}/rollback"): "publisher",
    ("POST", f"{SITE}/schedules"): "publisher",
    ("GET", f"{SITE}/schedules"): "editor",
    ("GET", f"{SITE}/schedules/{{id}}"): "editor",
    ("DELETE", f"{SITE}/schedules/{{id}}"): "publisher",
    ("GET", f"{SITE}/history"): "editor",
    ("GET", f"{SITE}/diff"): "editor",
    ("GET", f"{SITE}/forms/{{env}}"): ("editor", "publisher"),
    ("DELETE", f"{SITE}/forms/{{env}}"): "publisher",
    ("DELETE", f"{SITE}/forms/{{env}}/{{id}}"): "publisher",
    ("GET", f"{SITE}/analytics/{{env}}"): "editor",
    ("GET", f"{SITE}/webhooks/{{env}}"): "publisher",
    ("POST", f"{SITE}/preview-links"): "editor",
    ("POST", f"{SITE}/gc"): "admin",
}

# Calls any role may make, but only with a token that sees every site (their
# answer covers every site): /metrics (issue 19). Of the test tokens, only "admin".
EVERY_SITE_ONLY = {("GET", "/metrics")}

SAMPLE = {"site": "acme", "sha256": "ab" * 32, "id": "nosuchthing0"}


async def registered_routes(root: Path) -> set[tuple[str, str]]:
    """``(METHOD, path template)`` of every route of the admin app ``edge serve`` builds."""
    root.mkdir(parents=True, exist_ok=True)
    config = EdgeServer(root=root, tokens={name: new_token()[0] for name in ROLES})
    config.write_config()
    settings = load_config(config.config_path)
    async with open_runtime(settings) as runtime:
        app = build_admin_app(runtime)
        return {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.resource is not None and not is_static_ui(route.resource.canonical)
        }


def is_static_ui(template: str) -> bool:
    """The dashboard's static files: public by design, they hold no data (docs/dashboard.md).

    The page reads everything through the /v1 API with the operator's token, so
    these are the only admin-listener routes outside the token table.
    """
    return template == "/ui" or template.startswith("/ui/")


def concrete_paths(template: str) -> list[tuple[str, str | None]]:
    """Paths to call for a route template, with the environment each one names."""
    envs: list[str | None] = ["staging", "production"] if "{env}" in template else [None]
    out = []
    for env in envs:
        path = template.replace("{env}", env or "")
        for name, value in SAMPLE.items():
            path = path.replace("{" + name + "}", value)
        out.append((path, env))
    return out
