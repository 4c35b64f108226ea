"""The ``edge`` command line: every subcommand with a description, examples and option help.

Only the shape of the command line lives here; :mod:`edge.cli.main` runs what
was asked (each subcommand sets ``run`` to the name of its command).
"""

from __future__ import annotations

import argparse
import os
import re

DEFAULT_ADMIN_URL = "http://127.0.0.1:8081"
_SITE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_FORMATTER = argparse.RawDescriptionHelpFormatter


def site_list(value: str) -> list[str]:
    """``--sites a,b`` (also repeated): site ids, checked like the configuration checks them."""
    sites = [s.strip() for s in value.split(",") if s.strip()]
    if not sites:
        raise argparse.ArgumentTypeError("expected site ids, e.g. --sites acme,blog")
    for site in sites:
        if site == "*":
            raise argparse.ArgumentTypeError("for every site, use --all-sites")
        if not _SITE_ID.match(site):
            raise argparse.ArgumentTypeError(f"{site!r} is not a site id")
    return sites


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    examples: list[str],
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=_FORMATTER,
    )


def _admin_options(p: argparse.ArgumentParser, *, site: bool = True) -> None:
    p.add_argument(
        "--admin-url",
        help=f"the admin API's URL (default: $EDGE_ADMIN_URL, else {DEFAULT_ADMIN_URL})",
    )
    p.add_argument("--token", help="the bearer token (default: $EDGE_TOKEN)")
    if site:
        p.add_argument("--site", required=True, help="the site's id, as in the configuration")


def _env_option(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument(
        "--env",
        choices=["staging", "production"],
        default=default,
        help=what + (f" (default: {default})" if default else " (default: both)"),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge",
        description=(
            "edge: a reverse proxy and content router for sites with a staging and a\n"
            "production environment. `edge serve` runs it; the other commands talk to\n"
            "its admin API (--admin-url or $EDGE_ADMIN_URL, --token or $EDGE_TOKEN)."
        ),
        epilog="Run `edge COMMAND --help` for a command's options and examples.",
        formatter_class=_FORMATTER,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # -- running edge ------------------------------------------------------------------

    p = _add(
        sub,
        "serve",
        "run the proxy and the admin API",
        "Serve visitors on [server] listen and the admin API on [server] admin_listen.\n"
        "Refuses to start when a running edge holds those ports, the data_dir or\n"
        "(PostgreSQL) the node_name. Stops gracefully on SIGTERM/SIGINT; SIGHUP or\n"
        "`edge reload` re-reads certificates and host tables.",
        ["edge serve --config config/edge.toml", "edge serve --config edge.toml --workers 4"],
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes serving the same ports (default: the number of cores)",
    )
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.add_argument("--admin-process", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(run="serve")

    p = _add(
        sub,
        "reload",
        "re-read certificates and host tables without a restart",
        "Check the configuration file, then ask the running edge (by the pid file in\n"
        "its data_dir) to apply it. A change only a restart can apply is refused and\n"
        "the running edge keeps its configuration.",
        ["edge reload --config config/edge.toml"],
    )
    p.add_argument("--config", required=True, help="the running edge's configuration file")
    p.set_defaults(run="reload")

    p = _add(
        sub,
        "demo",
        "serve with the demo site pushed and published",
        "Serve the configuration with a token made for this run (printed), push the\n"
        "demo directory to staging through the admin API and publish it.",
        ["edge demo", "edge demo --config my.toml --site-dir ./site --site acme"],
    )
    p.add_argument(
        "--config", default="config/edge.toml", help="configuration (default: %(default)s)"
    )
    p.add_argument(
        "--site-dir", default="config/demo-site", help="directory to push (default: %(default)s)"
    )
    p.add_argument("--site", default="demo", help="site to push it to (default: %(default)s)")
    p.set_defaults(run="demo")

    # -- moving content ----------------------------------------------------------------

    p = _add(
        sub,
        "push",
        "upload a directory as a new snapshot and point an environment at it",
        "Hash every file of DIR, upload only the blobs the server lacks, create a\n"
        "snapshot (settings carried over unless --settings) and point the environment\n"
        "at it. A directory with no files is refused unless --allow-empty: the\n"
        "environment would answer 404 for every path.",
        [
            "edge push ./public --site acme -m 'spring sale'",
            "edge push ./hotfix --site acme --env production -m 'fix the price'",
        ],
    )
    _admin_options(p)
    p.add_argument("dir", metavar="DIR", help="the directory whose files become the snapshot")
    _env_option(p, "staging", "the environment to point at it; production needs publisher")
    p.add_argument(
        "--message", "-m", default="", help="why: shown in history, status and the dashboard"
    )
    p.add_argument("--settings", help="JSON file: the snapshot's settings (default: kept)")
    p.add_argument(
        "--allow-empty", action="store_true", help="allow a DIR with no files (empties the env)"
    )
    p.set_defaults(run="push")

    p = _add(
        sub,
        "publish",
        "promote staging to production (whole, or --path pieces)",
        "Production := staging, in one atomic swap. If production moved since staging\n"
        "last synced (an emergency fix), the two are merged: production's own changes\n"
        "are kept; a path changed on both sides is refused unless --force.\n"
        "--dry-run shows what production would become and moves nothing.",
        [
            "edge publish --site acme --dry-run",
            "edge publish --site acme",
            "edge publish --site acme --path /pricing.html --path /about.html",
        ],
    )
    _admin_options(p)
    p.add_argument("--path", action="append", help="publish only this path (repeatable)")
    p.add_argument(
        "--settings", action="store_true", help="with --path: take staging's settings too"
    )
    p.add_argument("--force", action="store_true", help="on drift conflicts, staging wins")
    p.add_argument("--dry-run", action="store_true", help="show what would change; move nothing")
    p.add_argument(
        "--wait-all",
        type=float,
        nargs="?",
        const=10.0,
        metavar="SECONDS",
        help="answer once every node serves it (several machines); fail after SECONDS (10)",
    )
    p.set_defaults(run="publish")

    p = _add(
        sub,
        "schedule",
        "capture staging now, publish it at AT",
        "Capture staging's snapshot now (what was reviewed is what goes live) and\n"
        "publish it at AT. Schedules due at the same moment go live in one swap.",
        [
            "edge schedule 2026-12-01T10:00:00+01:00 --site acme",
            "edge schedule 2026-12-01T09:00:00Z --site acme --path /launch.html",
        ],
    )
    _admin_options(p)
    p.add_argument(
        "at", metavar="AT", help="RFC 3339 time with an offset, e.g. 2026-12-01T10:00:00+01:00"
    )
    p.add_argument("--path", action="append", help="schedule only this path (repeatable)")
    p.set_defaults(run="schedule")

    p = _add(
        sub,
        "schedules",
        "list schedules with their status",
        "Schedules of a site: pending, done, failed (with the reason) or cancelled.",
        ["edge schedules --site acme", "edge schedules --site acme --status failed"],
    )
    _admin_options(p)
    p.add_argument(
        "--status",
        choices=["pending", "done", "failed", "cancelled"],
        help="only schedules with this status",
    )
    p.set_defaults(run="schedules")

    p = _add(
        sub,
        "unschedule",
        "cancel a pending schedule",
        "Cancel a pending schedule (see `edge schedules` for ids).",
        ["edge unschedule 01J9Z8... --site acme"],
    )
    _admin_options(p)
    p.add_argument("id", metavar="ID", help="the schedule's id")
    p.set_defaults(run="unschedule")

    p = _add(
        sub,
        "refresh",
        "staging := production (refuses to drop unpublished work)",
        "Point staging at production's snapshot. Refused while staging holds changes\n"
        "production lacks, unless --force (the old staging snapshot stays in history).",
        ["edge refresh --site acme", "edge refresh --site acme --force"],
    )
    _admin_options(p)
    p.add_argument(
        "--force", action="store_true", help="refresh even if staging holds unpublished work"
    )
    p.set_defaults(run="refresh")

    p = _add(
        sub,
        "rollback",
        "production := its previous snapshot (or --to ID)",
        "Point production back at its previous snapshot, or at one it had before.\n"
        "A rollback is itself a move in history and can be rolled back.",
        ["edge rollback --site acme", "edge rollback --site acme --to 01J9Z8..."],
    )
    _admin_options(p)
    p.add_argument("--to", metavar="ID", help="a snapshot production had before (see history)")
    p.set_defaults(run="rollback")

    p = _add(
        sub,
        "gc",
        "remove snapshots and blobs the retention policy no longer keeps",
        "Remove the site's snapshots and blobs nothing needs any more: kept are those a\n"
        "pointer, a pending schedule, a valid preview link or the last N production moves\n"
        "name ([retention] in the configuration), and anything newer than its grace\n"
        "period. History stays; a rollback to a collected snapshot is refused. Admin role.",
        ["edge gc --site acme --dry-run", "edge gc --site acme"],
    )
    _admin_options(p)
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.set_defaults(run="gc")

    # -- looking -----------------------------------------------------------------------

    p = _add(
        sub,
        "sites",
        "the sites this token can see, with both environments",
        "Every site the token may see: its hosts and where staging and production point.",
        ["edge sites"],
    )
    _admin_options(p, site=False)
    p.set_defaults(run="sites")

    p = _add(
        sub,
        "status",
        "show both environments of a site",
        "Where staging and production point, since when, by whom and with which\n"
        "message; says when production drifted from staging's base.",
        ["edge status --site acme"],
    )
    _admin_options(p)
    p.set_defaults(run="status")

    p = _add(
        sub,
        "history",
        "every pointer move, newest first",
        "Every move of a site's pointers: when, which environment, the action, the\n"
        "snapshots, who, and the snapshot's message.",
        ["edge history --site acme", "edge history --site acme --env production --limit 10"],
    )
    _admin_options(p)
    _env_option(p, None, "only moves of this environment")
    p.add_argument(
        "--limit", type=int, default=50, help="at most this many moves (default: %(default)s)"
    )
    p.set_defaults(run="history")

    p = _add(
        sub,
        "diff",
        "what a publish would change (or --raw: two snapshots' manifests)",
        "By default: the publish's dry run, i.e. what production would become with\n"
        "`edge publish` (production's own fixes kept, conflicts listed). --raw: the\n"
        "plain manifest diff between two environments or snapshots (--from, --to).",
        [
            "edge diff --site acme",
            "edge diff --site acme --raw",
            "edge diff --site acme --raw --from 01J9Z8... --to staging",
        ],
    )
    _admin_options(p)
    p.add_argument("--raw", action="store_true", help="the manifest diff, --from -> --to")
    p.add_argument(
        "--from",
        dest="from_",
        metavar="FROM",
        default="production",
        help="with --raw: environment or snapshot id (default: %(default)s)",
    )
    p.add_argument(
        "--to",
        metavar="TO",
        default="staging",
        help="with --raw: environment or snapshot id (default: %(default)s)",
    )
    p.set_defaults(run="diff")

    p = _add(
        sub,
        "inbox",
        "form submissions of one environment, newest first",
        "Form submissions stored by one environment (never promoted).",
        [
            "edge inbox --site acme",
            "edge inbox --site acme --env staging --form contact",
            "edge inbox --site acme --delete --before 2026-11-01T00:00:00Z",
        ],
    )
    _admin_options(p)
    _env_option(p, "production", "whose inbox")
    p.add_argument("--form", help="only this form")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default: %(default)s)")
    # Emptying an inbox (issue 19): publisher role, both environments.
    p.add_argument(
        "--delete",
        action="store_true",
        help="delete the submissions instead of listing them (all, or with --before/--form/--id)",
    )
    p.add_argument("--before", metavar="T", help="with --delete: only those before RFC 3339 time T")
    p.add_argument("--id", type=int, help="with --delete: only this submission")
    p.set_defaults(run="inbox")

    p = _add(
        sub,
        "nodes",
        "the nodes sharing the PostgreSQL store and what each serves",
        "Every node registered in the shared store; exits 1 when a live node is\n"
        "behind the cluster (a check after a deploy).",
        ["edge nodes"],
    )
    _admin_options(p, site=False)
    p.set_defaults(run="nodes")

    # -- tokens ------------------------------------------------------------------------

    token = _add(
        sub,
        "token",
        "admin API tokens",
        "Make admin API tokens (only their sha256 goes into the configuration).",
        ["edge token new --name release-bot --role publisher --sites acme,blog"],
    )
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    p = _add(
        token_sub,
        "new",
        "make a token and print its [[tokens]] block for the configuration",
        "Print a new random token (shown only now) and the [[tokens]] block to add to\n"
        "the configuration. A token sees the sites given with --sites (comma-separated\n"
        "or repeated), or every site with --all-sites.",
        [
            "edge token new --name release-bot --role publisher --sites acme,blog",
            "edge token new --name ci --role editor --sites acme --sites blog",
            "edge token new --name ops --role admin --all-sites",
        ],
    )
    p.add_argument("--name", required=True, help="who uses it: shown in history as the actor")
    p.add_argument(
        "--role",
        choices=["editor", "publisher", "admin"],
        default="publisher",
        help="editor: push to staging; publisher: also publish and move production;"
        " admin: everything (default: %(default)s)",
    )
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--sites",
        type=site_list,
        action="append",
        metavar="SITE[,SITE...]",
        help="the sites it may act on (comma-separated, repeatable)",
    )
    scope.add_argument("--all-sites", action="store_true", help="every site, present and future")
    p.set_defaults(run="token-new")
    return parser
