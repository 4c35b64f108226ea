"""The ``edge`` command line: every subcommand with a description, examples and option help.

Only the shape of the command line lives here; :mod:`edge.cli.main` runs what
was asked (each subcommand sets ``run`` to the name of its command).
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call: its flags (or positional name) and keywords."""

    flags: tuple[str, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class OneOf:
    """A required choice between arguments (``add_mutually_exclusive_group``)."""

    args: tuple[Arg, ...]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


def flag(name: str, help: str) -> Arg:
    """An on/off option (``--force``, ``--dry-run``...)."""
    return Arg((name,), {"action": "store_true", "help": help})


def paths(help: str) -> Arg:
    return Arg(("--path",), {"action": "append", "help": help})


def env(default: str | None, what: str) -> Arg:
    return Arg(
        ("--env",),
        {
            "choices": ["staging", "production"],
            "default": default,
            "help": what + (f" (default: {default})" if default else " (default: both)"),
        },
    )


def limit(what: str) -> Arg:
    return Arg(("--limit",), {"type": int, "default": 50, "help": what + " (default: %(default)s)"})


# What a command talking to the admin API takes first: the API, the token, the site.
ADMIN_URL = arg(
    "--admin-url", help=f"the admin API's URL (default: $EDGE_ADMIN_URL, else {DEFAULT_ADMIN_URL})"
)
TOKEN = arg("--token", help="the bearer token (default: $EDGE_TOKEN)")
SITE = arg("--site", required=True, help="the site's id, as in the configuration")
ON_A_SITE = (ADMIN_URL, TOKEN, SITE)
ON_SITES = (ADMIN_URL, TOKEN)


@dataclass(frozen=True)
class Command:
    """A subcommand: its help, its arguments in order, and what ``main`` runs for it."""

    name: str
    summary: str
    description: str
    examples: tuple[str, ...]
    args: tuple[Arg | OneOf, ...] = ()
    run: str = ""  # default: the name
    commands: tuple[Command, ...] = ()  # its own subcommands, if any


COMMANDS: tuple[Command, ...] = (
    # -- running edge ------------------------------------------------------------------
    Command(
        "serve",
        "run the proxy and the admin API",
        "Serve visitors on [server] listen and the admin API on [server] admin_listen.\n"
        "Refuses to start when a running edge holds those ports, the data_dir or\n"
        "(PostgreSQL) the node_name. Stops gracefully on SIGTERM/SIGINT; SIGHUP or\n"
        "`edge reload` re-reads certificates and host tables.",
        ("edge serve --config config/edge.toml", "edge serve --config edge.toml --workers 4"),
        (
            arg("--config", required=True, help="the TOML configuration file"),
            arg(
                "--workers",
                type=int,
                default=os.cpu_count() or 1,
                help="processes serving the same ports (default: the number of cores)",
            ),
            arg("--worker-index", type=int, help=argparse.SUPPRESS),
            arg("--admin-process", action="store_true", help=argparse.SUPPRESS),
        ),
    ),
    Command(
        "reload",
        "re-read certificates and host tables without a restart",
        "Check the configuration file, then ask the running edge (by the pid file in\n"
        "its data_dir) to apply it. A change only a restart can apply is refused and\n"
        "the running edge keeps its configuration.",
        ("edge reload --config config/edge.toml",),
        (arg("--config", required=True, help="the running edge's configuration file"),),
    ),
    Command(
        "demo",
        "serve with the demo site pushed and published",
        "Serve the configuration with a token made for this run (printed), push the\n"
        "demo directory to staging through the admin API and publish it.",
        ("edge demo", "edge demo --config my.toml --site-dir ./site --site acme"),
        (
            arg(
                "--config", default="config/edge.toml", help="configuration (default: %(default)s)"
            ),
            arg(
                "--site-dir",
                default="config/demo-site",
                help="directory to push (default: %(default)s)",
            ),
            arg("--site", default="demo", help="site to push it to (default: %(default)s)"),
        ),
    ),
    # -- moving content ----------------------------------------------------------------
    Command(
        "push",
        "upload a directory as a new snapshot and point an environment at it",
        "Hash every file of DIR, upload only the blobs the server lacks, create a\n"
        "snapshot (settings carried over unless --settings) and point the environment\n"
        "at it. A directory with no files is refused unless --allow-empty: the\n"
        "environment would answer 404 for every path.",
        (
            "edge push ./public --site acme -m 'spring sale'",
            "edge push ./hotfix --site acme --env production -m 'fix the price'",
        ),
        (
            *ON_A_SITE,
            arg("dir", metavar="DIR", help="the directory whose files become the snapshot"),
            env("staging", "the environment to point at it; production needs publisher"),
            arg(
                "--message",
                "-m",
                default="",
                help="why: shown in history, status and the dashboard",
            ),
            arg("--settings", help="JSON file: the snapshot's settings (default: kept)"),
            flag("--allow-empty", "allow a DIR with no files (empties the env)"),
        ),
    ),
    Command(
        "publish",
        "promote staging to production (whole, or --path pieces)",
        "Production := staging, in one atomic swap. If production moved since staging\n"
        "last synced (an emergency fix), the two are merged: production's own changes\n"
        "are kept; a path changed on both sides is refused unless --force.\n"
        "--dry-run shows what production would become and moves nothing.",
        (
            "edge publish --site acme --dry-run",
            "edge publish --site acme",
            "edge publish --site acme --path /pricing.html --path /about.html",
        ),
        (
            *ON_A_SITE,
            paths("publish only this path (repeatable)"),
            flag("--settings", "with --path: take staging's settings too"),
            flag("--force", "on drift conflicts, staging wins"),
            flag("--dry-run", "show what would change; move nothing"),
            arg(
                "--wait-all",
                type=float,
                nargs="?",
                const=10.0,
                metavar="SECONDS",
                help="answer once every node serves it (several machines); fail after SECONDS (10)",
            ),
        ),
    ),
    Command(
        "schedule",
        "capture staging now, publish it at AT",
        "Capture staging's snapshot now (what was reviewed is what goes live) and\n"
        "publish it at AT. Schedules due at the same moment go live in one swap.",
        (
            "edge schedule 2026-12-01T10:00:00+01:00 --site acme",
            "edge schedule 2026-12-01T09:00:00Z --site acme --path /launch.html",
        ),
        (
            *ON_A_SITE,
            arg(
                "at",
                metavar="AT",
                help="RFC 3339 time with an offset, e.g. 2026-12-01T10:00:00+01:00",
            ),
            paths("schedule only this path (repeatable)"),
        ),
    ),
    Command(
        "schedules",
        "list schedules with their status",
        "Schedules of a site: pending, done, failed (with the reason) or cancelled.",
        ("edge schedules --site acme", "edge schedules --site acme --status failed"),
        (
            *ON_A_SITE,
            arg(
                "--status",
                choices=["pending", "done", "failed", "cancelled"],
                help="only schedules with this status",
            ),
        ),
    ),
    Command(
        "unschedule",
        "cancel a pending schedule",
        "Cancel a pending schedule (see `edge schedules` for ids).",
        ("edge unschedule 01J9Z8... --site acme",),
        (*ON_A_SITE, arg("id", metavar="ID", help="the schedule's id")),
    ),
    Command(
        "refresh",
        "staging := production (refuses to drop unpublished work)",
        "Point staging at production's snapshot. Refused while staging holds changes\n"
        "production lacks, unless --force (the old staging snapshot stays in history).",
        ("edge refresh --site acme", "edge refresh --site acme --force"),
        (*ON_A_SITE, flag("--force", "refresh even if staging holds unpublished work")),
    ),
    Command(
        "rollback",
        "production := its previous snapshot (or --to ID)",
        "Point production back at its previous snapshot, or at one it had before.\n"
        "A rollback is itself a move in history and can be rolled back.",
        ("edge rollback --site acme", "edge rollback --site acme --to 01J9Z8..."),
        (
            *ON_A_SITE,
            arg("--to", metavar="ID", help="a snapshot production had before (see history)"),
        ),
    ),
    Command(
        "gc",
        "remove snapshots and blobs the retention policy no longer keeps",
        "Remove the site's snapshots and blobs nothing needs any more: kept are those a\n"
        "pointer, a pending schedule, a valid preview link or the last N production moves\n"
        "name ([retention] in the configuration), and anything newer than its grace\n"
        "period. History stays; a rollback to a collected snapshot is refused. Admin role.",
        ("edge gc --site acme --dry-run", "edge gc --site acme"),
        (*ON_A_SITE, flag("--dry-run", "only say what would be removed")),
    ),
    # -- looking -----------------------------------------------------------------------
    Command(
        "sites",
        "the sites this token can see, with both environments",
        "Every site the token may see: its hosts and where staging and production point.",
        ("edge sites",),
        ON_SITES,
    ),
    Command(
        "status",
        "show both environments of a site",
        "Where staging and production point, since when, by whom and with which\n"
        "message; says when production drifted from staging's base.",
        ("edge status --site acme",),
        ON_A_SITE,
    ),
    Command(
        "history",
        "every pointer move, newest first",
        "Every move of a site's pointers: when, which environment, the action, the\n"
        "snapshots, who, and the snapshot's message.",
        ("edge history --site acme", "edge history --site acme --env production --limit 10"),
        (*ON_A_SITE, env(None, "only moves of this environment"), limit("at most this many moves")),
    ),
    Command(
        "diff",
        "what a publish would change (or --raw: two snapshots' manifests)",
        "By default: the publish's dry run, i.e. what production would become with\n"
        "`edge publish` (production's own fixes kept, conflicts listed). --raw: the\n"
        "plain manifest diff between two environments or snapshots (--from, --to).",
        (
            "edge diff --site acme",
            "edge diff --site acme --raw",
            "edge diff --site acme --raw --from 01J9Z8... --to staging",
        ),
        (
            *ON_A_SITE,
            flag("--raw", "the manifest diff, --from -> --to"),
            arg(
                "--from",
                dest="from_",
                metavar="FROM",
                default="production",
                help="with --raw: environment or snapshot id (default: %(default)s)",
            ),
            arg(
                "--to",
                metavar="TO",
                default="staging",
                help="with --raw: environment or snapshot id (default: %(default)s)",
            ),
        ),
    ),
    Command(
        "inbox",
        "form submissions of one environment, newest first",
        "Form submissions stored by one environment (never promoted).",
        (
            "edge inbox --site acme",
            "edge inbox --site acme --env staging --form contact",
            "edge inbox --site acme --delete --before 2026-11-01T00:00:00Z",
        ),
        (
            *ON_A_SITE,
            env("production", "whose inbox"),
            arg("--form", help="only this form"),
            limit("at most this many"),
            # Emptying an inbox (issue 19): publisher role, both environments.
            flag(
                "--delete",
                "delete the submissions instead of listing them"
                " (all, or with --before/--form/--id)",
            ),
            arg("--before", metavar="T", help="with --delete: only those before RFC 3339 time T"),
            arg("--id", type=int, help="with --delete: only this submission"),
        ),
    ),
    Command(
        "nodes",
        "the nodes sharing the PostgreSQL store and what each serves",
        "Every node registered in the shared store; exits 1 when a live node is\n"
        "behind the cluster (a check after a deploy).",
        ("edge nodes",),
        ON_SITES,
    ),
    # -- tokens ------------------------------------------------------------------------
    Command(
        "token",
        "admin API tokens",
        "Make admin API tokens (only their sha256 goes into the configuration).",
        ("edge token new --name release-bot --role publisher --sites acme,blog",),
        commands=(
            Command(
                "new",
                "make a token and print its [[tokens]] block for the configuration",
                "Print a new random token (shown only now) and the [[tokens]] block to add to\n"
                "the configuration. A token sees the sites given with --sites (comma-separated\n"
                "or repeated), or every site with --all-sites.",
                (
                    "edge token new --name release-bot --role publisher --sites acme,blog",
                    "edge token new --name ci --role editor --sites acme --sites blog",
                    "edge token new --name ops --role admin --all-sites",
                ),
                (
                    arg("--name", required=True, help="who uses it: shown in history as the actor"),
                    arg(
                        "--role",
                        choices=["editor", "publisher", "admin"],
                        default="publisher",
                        help="editor: push to staging; publisher: also publish and move"
                        " production; admin: everything (default: %(default)s)",
                    ),
                    OneOf(
                        (
                            arg(
                                "--sites",
                                type=site_list,
                                action="append",
                                metavar="SITE[,SITE...]",
                                help="the sites it may act on (comma-separated, repeatable)",
                            ),
                            flag("--all-sites", "every site, present and future"),
                        )
                    ),
                ),
                run="token-new",
            ),
        ),
    ),
)


def _add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], command: Command
) -> None:
    p = sub.add_parser(
        command.name,
        help=command.summary,
        description=command.description,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in command.examples),
        formatter_class=_FORMATTER,
    )
    for a in command.args:
        if isinstance(a, OneOf):
            group = p.add_mutually_exclusive_group(required=True)
            for one in a.args:
                group.add_argument(*one.flags, **one.options)
        else:
            p.add_argument(*a.flags, **a.options)
    if command.commands:
        inner = p.add_subparsers(dest=f"{command.name}_command", required=True, metavar="COMMAND")
        for c in command.commands:
            _add_command(inner, c)
    else:
        p.set_defaults(run=command.run or command.name)


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
    for command in COMMANDS:
        _add_command(sub, command)
    return parser
