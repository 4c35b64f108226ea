"""``edge demo``: the proxy with the demo site already pushed and published.

It serves the given configuration plus one extra admin token made for this run
(its hash lives only in memory; the token is printed so the operator can try the
admin API), then pushes the demo directory to staging through the real admin
API and publishes it, exactly as an operator would with ``edge push`` and
``edge publish``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import msgspec

from edge.admin_api.auth import new_token
from edge.cli.client import AdminClient
from edge.cli.push import push
from edge.config import TokenConfig, load_config
from edge.server import Runtime, serve


async def run_demo(config_path: Path, site_dir: Path, site: str) -> int:
    settings = load_config(config_path)
    if site not in settings.site_ids:
        print(f"error: {config_path} has no site {site!r}")
        return 2
    token, digest = new_token()
    config = msgspec.structs.replace(
        settings.config,
        tokens=(*settings.config.tokens, TokenConfig(name="demo", sha256=digest, role="admin")),
    )
    demo_settings = dataclasses.replace(settings, config=config)

    async def publish_demo(runtime: Runtime) -> None:
        admin_url = f"http://{demo_settings.admin_listen}"
        async with AdminClient(admin_url, token) as client:
            result = await push(client, site, site_dir, message="demo site", show_progress=False)
            answer = await client.call("POST", f"/v1/sites/{site}/publish", json={})
        routes = demo_settings.routes
        listen = demo_settings.listen
        prod_host = routes.hosts_of(site, "production")[0]
        staging_host = routes.hosts_of(site, "staging")[0]
        print(
            f"""
edge demo is running (Ctrl-C stops it)
  pushed {result.files} files from {site_dir} ({result.uploaded} uploaded)
  production is at snapshot {answer["production"]}

  production: curl -i -H 'Host: {prod_host}' http://{listen}/
  staging:    curl -i -H 'Host: {staging_host}' http://{listen}/
  in a browser: http://{prod_host}:{listen.port}/ and http://{staging_host}:{listen.port}/

  admin API:  export EDGE_ADMIN_URL={admin_url} EDGE_TOKEN={token}
              {Path(sys.executable).parent / "edge"} status --site {site}
  dashboard:  {admin_url}/ui/ (sign in with the token above)
""",
            flush=True,
        )

    await serve(demo_settings, ready=publish_demo)
    return 0
