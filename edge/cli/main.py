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
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge.admin_api.auth import new_token
from edge.cli import commands
from edge.cli.client import AdminClient, ApiError
from edge.cli.push import PushError
from edge.config import load_config
from edge.errors import ConfigError, EdgeError

DEFAULT_ADMIN_URL = "http://127.0.0.1:8081"


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
    from edge.server import hold_reloads, serve
    from edge.supervisor import supervise
    from edge.tls import load_certificates
    from edge.wire.parser import check_http_parser

    hold_reloads()  # a SIGHUP during start-up must not kill the process
    settings = load_config(args.config)
    check_http_parser(settings.config.server.allow_python_http_parser)  # before any worker
    workers = args.workers
    if workers < 1:
        raise SystemExit("error: --workers must be at least 1")
    if args.worker_index is not None:  # one worker of a supervisor
        return run_async(_serve(serve, settings, args.worker_index, workers))
    load_certificates(settings)  # a bad certificate stops start-up here, naming the file
    with _pid_file(settings.pid_file):
        if workers > 1:
            return supervise(Path(args.config), settings, workers)
        return run_async(_serve(serve, settings, 0, 1))


async def _serve(
    serve: Callable[..., Awaitable[None]], settings: Any, worker: int, workers: int
) -> int:
    await serve(settings, worker=worker, workers=workers)
    return 0


@contextmanager
def _pid_file(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


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

    return run_async(run_demo(Path(args.config), Path(args.site_dir), args.site))


def cmd_token_new(args: argparse.Namespace) -> int:
    token, digest = new_token()
    sites = ", ".join(f'"{s}"' for s in args.sites)
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


# -- parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def admin(name: str, help_text: str, *, site: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--admin-url", help=f"admin API (env EDGE_ADMIN_URL, default {DEFAULT_ADMIN_URL})"
        )
        p.add_argument("--token", help="bearer token (env EDGE_TOKEN)")
        if site:
            p.add_argument("--site", required=True, help="site id")
        return p

    p = sub.add_parser("serve", help="run the proxy and the admin API")
    p.add_argument("--config", required=True, help="TOML configuration file")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes serving the same ports (default: the number of cores)",
    )
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("reload", help="re-read certificates and host tables without a restart")
    p.add_argument("--config", required=True, help="the running edge's configuration file")
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser("demo", help="serve with the demo site pushed and published")
    p.add_argument("--config", default="config/edge.toml")
    p.add_argument("--site-dir", default="config/demo-site")
    p.add_argument("--site", default="demo")
    p.set_defaults(func=cmd_demo)

    p = admin("push", "upload a directory as a new snapshot and point an environment at it")
    p.add_argument("dir")
    p.add_argument("--env", choices=["staging", "production"], default="staging")
    p.add_argument("--message", "-m", default="")
    p.add_argument("--settings", help="JSON file: the snapshot's settings (default: kept)")
    p.set_defaults(func=_admin_command(commands.cmd_push))

    p = admin("publish", "promote staging to production (whole, or --path pieces)")
    p.add_argument("--path", action="append", help="publish only this path (repeatable)")
    p.add_argument("--settings", action="store_true", help="publish staging's settings too")
    p.add_argument("--force", action="store_true", help="on drift conflicts, staging wins")
    p.add_argument(
        "--wait-all",
        type=float,
        nargs="?",
        const=10.0,
        metavar="SECONDS",
        help="answer once every node serves it (several machines); fail after SECONDS (10)",
    )
    p.set_defaults(func=_admin_command(commands.cmd_publish))

    p = admin("schedule", "capture staging now, publish it at AT (RFC 3339 with offset)")
    p.add_argument("at", help="e.g. 2026-12-01T10:00:00+01:00")
    p.add_argument("--path", action="append", help="schedule only this path (repeatable)")
    p.set_defaults(func=_admin_command(commands.cmd_schedule))

    p = admin("schedules", "list schedules with their status")
    p.add_argument("--status", choices=["pending", "done", "failed", "cancelled"])
    p.set_defaults(func=_admin_command(commands.cmd_schedules))

    p = admin("unschedule", "cancel a pending schedule")
    p.add_argument("id")
    p.set_defaults(func=_admin_command(commands.cmd_unschedule))

    p = admin("refresh", "staging := production (refuses to drop unpublished work)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_admin_command(commands.cmd_refresh))

    p = admin("rollback", "production := its previous snapshot (or --to ID)")
    p.add_argument("--to")
    p.set_defaults(func=_admin_command(commands.cmd_rollback))

    p = admin("gc", "remove snapshots and blobs the retention policy no longer keeps")
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.set_defaults(func=_admin_command(commands.cmd_gc))

    p = admin("history", "every pointer move, newest first")
    p.add_argument("--env", choices=["staging", "production"])
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=_admin_command(commands.cmd_history))

    p = admin("diff", "paths that differ between environments or snapshots")
    p.add_argument("--from", dest="from_", default="production")
    p.add_argument("--to", default="staging")
    p.set_defaults(func=_admin_command(commands.cmd_diff))

    p = admin("inbox", "form submissions of one environment, newest first")
    p.add_argument("--env", choices=["staging", "production"], default="production")
    p.add_argument("--form", help="only this form")
    p.add_argument("--limit", type=int, default=50)
    # Emptying an inbox (issue 19): publisher role, both environments.
    p.add_argument(
        "--delete",
        action="store_true",
        help="delete the submissions instead of listing them (all, or with --before/--form/--id)",
    )
    p.add_argument("--before", metavar="T", help="with --delete: only those before RFC 3339 time T")
    p.add_argument("--id", type=int, help="with --delete: only this submission")
    p.set_defaults(func=_admin_command(commands.cmd_inbox))

    p = admin("status", "show both environments of a site")
    p.set_defaults(func=_admin_command(commands.cmd_status))

    p = admin("nodes", "the nodes sharing the PostgreSQL store and what each serves", site=False)
    p.set_defaults(func=_admin_command(commands.cmd_nodes))

    token = sub.add_parser("token", help="admin API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    p = token_sub.add_parser("new", help="make a token and print its sha256 for the config")
    p.add_argument("--name", default="operator")
    p.add_argument("--role", choices=["editor", "publisher", "admin"], default="publisher")
    p.add_argument("--sites", nargs="+", default=["*"])
    p.set_defaults(func=cmd_token_new)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"config error: {exc.message}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except EdgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except (PushError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
