"""``edge``: serve and demo, the admin commands, and token new.

Admin calls take the server from ``--admin-url`` or ``EDGE_ADMIN_URL`` and the
token from ``--token`` or ``EDGE_TOKEN``. A refused call prints the server's own
error text and exits 1; a configuration error exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from edge.admin_api.auth import new_token
from edge.cli import commands
from edge.cli.client import AdminClient, ApiError, Unreachable
from edge.cli.parser import DEFAULT_ADMIN_URL, build_parser
from edge.cli.push import PushError
from edge.config import load_config
from edge.errors import ConfigError, EdgeError


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _client(args: argparse.Namespace) -> AdminClient:
    token = args.token or os.environ.get("EDGE_TOKEN")
    if not token:
        raise SystemExit("error: no admin token: pass --token or set EDGE_TOKEN")
    return AdminClient(args.admin_url or os.environ.get("EDGE_ADMIN_URL", DEFAULT_ADMIN_URL), token)


# -- commands -----------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from edge.exclusive import check_node_name, hold
    from edge.observability.logs import log_json_to_stderr
    from edge.server import hold_reloads, serve
    from edge.supervisor import supervise
    from edge.tls import load_certificates
    from edge.wire.parser import check_http_parser

    hold_reloads()  # a SIGHUP during start-up must not kill the process
    log_json_to_stderr()  # one format on stderr: JSON lines, like the events
    settings = load_config(args.config)
    check_http_parser(settings.config.server.allow_python_http_parser)  # before any worker
    workers = args.workers
    if workers < 1:
        raise SystemExit("error: --workers must be at least 1")
    if args.worker_index is not None:  # one process of a supervisor
        role = "admin" if args.admin_process else "visitors"
        return run_async(_serve(serve, settings, args.worker_index, workers, role))
    load_certificates(settings)  # a bad certificate stops start-up here, naming the file
    # What a running edge holds alone: refused here, in one line, before anything binds.
    with hold(settings):
        asyncio.run(check_node_name(settings))
        # Always supervised: the visitor workers and, beside them, the admin process
        # (edge.supervisor), also with --workers 1.
        return supervise(Path(args.config), settings, workers)


async def _serve(
    serve: Callable[..., Awaitable[None]], settings: Any, worker: int, workers: int, role: str
) -> int:
    await serve(settings, worker=worker, workers=workers, role=role)
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    settings = load_config(args.config)  # refuse a broken file before signalling
    from edge.tls import load_certificates

    load_certificates(settings)
    try:
        pid = int(settings.pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: no running edge for {args.config} ({exc})") from None
    print(f"asked edge (pid {pid}) to reload {args.config}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.cli.demo import run_demo
    from edge.observability.logs import log_json_to_stderr

    log_json_to_stderr()  # as `edge serve`: stderr carries JSON lines only

    return run_async(run_demo(Path(args.config), Path(args.site_dir), args.site))


def cmd_token_new(args: argparse.Namespace) -> int:
    token, digest = new_token()
    chosen = ["*"] if args.all_sites else [s for group in args.sites for s in group]
    sites = ", ".join(f'"{s}"' for s in dict.fromkeys(chosen))
    print(f"token:  {token}\nsha256: {digest}\n")
    print("Add to the configuration (the token itself is shown only now):\n")
    print(
        f'[[tokens]]\nname = "{args.name}"\nsha256 = "{digest}"\nrole = "{args.role}"\n'
        f"sites = [{sites}]"
    )
    return 0


AdminCommand = Callable[[AdminClient, argparse.Namespace], Coroutine[Any, Any, int]]


def _admin_command(fn: AdminCommand) -> Callable[[argparse.Namespace], int]:
    async def call(args: argparse.Namespace) -> int:
        async with _client(args) as client:
            return await fn(client, args)

    def run(args: argparse.Namespace) -> int:
        return run_async(call(args))

    return run


RUN: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "reload": cmd_reload,
    "demo": cmd_demo,
    "token-new": cmd_token_new,
    **{
        name: _admin_command(fn)
        for name, fn in {
            "push": commands.cmd_push,
            "publish": commands.cmd_publish,
            "schedule": commands.cmd_schedule,
            "schedules": commands.cmd_schedules,
            "unschedule": commands.cmd_unschedule,
            "refresh": commands.cmd_refresh,
            "rollback": commands.cmd_rollback,
            "gc": commands.cmd_gc,
            "sites": commands.cmd_sites,
            "status": commands.cmd_status,
            "history": commands.cmd_history,
            "diff": commands.cmd_diff,
            "inbox": commands.cmd_inbox,
            "nodes": commands.cmd_nodes,
        }.items()
    },
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = RUN[args.run](args)
    except ConfigError as exc:
        print(f"config error: {exc.message}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except EdgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except (PushError, Unreachable, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
