"""The admin commands of the CLI: one coroutine each, printing readable tables."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge.cli.client import AdminClient, ApiError
from edge.cli.push import PushError, push
from edge.snapshots.schedule import parse_moment


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _show_refusal(exc: ApiError) -> None:
    """Print the paths a 409 names (drift conflicts, unpublished staging work)."""
    paths = exc.body.get("conflicts") or exc.body.get("paths")
    if paths:
        print(table([["path"], *[[p] for p in paths]]), file=sys.stderr)
    if exc.code == "drift":
        print(
            "production changed since staging's base and these paths changed on both sides.\n"
            "Choose: `edge refresh` (staging takes production, then redo the work), publish\n"
            "other paths with --path, or `edge publish --force` (staging's version wins).",
            file=sys.stderr,
        )


async def _call(client: AdminClient, method: str, path: str, **kw: Any) -> Any:
    try:
        return await client.call(method, path, **kw)
    except ApiError as exc:
        _show_refusal(exc)
        raise


def _moved(site: str, env: str, answer: dict[str, Any]) -> str:
    if answer.get("action") is None:
        return f"{site}: {env} unchanged at {answer.get(env) or '(none)'}"
    return (
        f"{site}: {env} {answer.get('previous') or '(none)'} -> {answer[env]} ({answer['action']})"
    )


async def cmd_push(client: AdminClient, args: argparse.Namespace) -> int:
    settings = None
    if args.settings:
        try:
            settings = json.loads(Path(args.settings).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PushError(f"{args.settings}: not a JSON settings document ({exc})") from None
    result = await push(
        client,
        args.site,
        Path(args.dir),
        env=args.env,
        message=args.message,
        settings=settings,
        show_progress=sys.stderr.isatty(),
        allow_empty=args.allow_empty,
    )
    print(
        f"{args.site}: {args.env} -> {result.snapshot} ({result.files} files,"
        f" {result.uploaded} uploaded, {result.uploaded_bytes} bytes)"
    )
    return 0


def _publish_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"force": getattr(args, "force", False)}
    paths, settings = getattr(args, "path", None), getattr(args, "settings", False)
    if paths:
        body["paths"] = paths
        body["settings"] = settings
    elif settings:
        body["paths"], body["settings"] = [], True
    return body


async def cmd_publish(client: AdminClient, args: argparse.Namespace) -> int:
    body = _publish_body(args)
    if args.dry_run:
        return await _preview(client, args.site, body)
    if args.wait_all is not None:
        body["wait"], body["wait_timeout"] = "all", args.wait_all
    answer = await _call(client, "POST", f"/v1/sites/{args.site}/publish", json=body)
    print(_moved(args.site, "production", answer))
    return 0


def preview_rows(preview: dict[str, Any]) -> list[list[str]]:
    """A publish's dry run as ``[change, path]`` rows (kept fixes and conflicts included)."""
    rows = [["added", p] for p in preview["added"]]
    rows += [["removed", p] for p in preview["removed"]]
    rows += [["changed", p] for p in preview["changed"]]
    if preview["settings_changed"]:
        rows.append(["changed", "(settings)"])
    rows += [["kept", f"{p} (production's own fix)"] for p in preview["kept"]]
    rows += [["conflict", f"{p} (staging's version wins: --force)"] for p in preview["conflicts"]]
    return rows


async def _preview(client: AdminClient, site: str, body: dict[str, Any]) -> int:
    """Print what the publish would do; nothing moves. Exit 1 when it would be refused."""
    try:
        preview = await client.call(
            "POST", f"/v1/sites/{site}/publish", json={**body, "dry_run": True}
        )
    except ApiError as exc:
        forced = exc.body.get("if_forced")
        if exc.code != "drift" or not isinstance(forced, dict):
            _show_refusal(exc)
            raise
        print(f"{site}: publish would be REFUSED (drift); with --force it would do:")
        print(table([["change", "path"], *preview_rows(forced)]))
        _show_refusal(exc)
        return 1
    if preview["action"] is None:
        print(f"{site}: production {preview['production'] or '(none)'} already has this; nothing"
              " would move")  # fmt: skip
        return 0
    print(
        f"{site}: production {preview['production'] or '(none)'} would become staging"
        f" {preview['staging']} ({preview['action']}); nothing moved"
    )
    rows = preview_rows(preview)
    print(table([["change", "path"], *rows]) if rows else "no differences")
    return 0


async def cmd_schedule(client: AdminClient, args: argparse.Namespace) -> int:
    at = parse_moment(args.at)  # refuse an offset-less time before asking the server
    body: dict[str, Any] = {"at": at}
    if args.path:
        body["paths"] = args.path
    s = await _call(client, "POST", f"/v1/sites/{args.site}/schedules", json=body)
    what = "whole staging" if s["paths"] is None else ", ".join(s["paths"])
    print(f"{args.site}: schedule {s['id']} at {s['at']}: {what} of snapshot {s['snapshot']}")
    return 0


async def cmd_schedules(client: AdminClient, args: argparse.Namespace) -> int:
    params = {"status": args.status} if args.status else None
    answer = await _call(client, "GET", f"/v1/sites/{args.site}/schedules", params=params)
    rows = [["id", "at (UTC)", "status", "snapshot", "paths", "by", "error"]]
    for s in answer["schedules"]:
        paths = "(all)" if s["paths"] is None else ",".join(s["paths"])
        rows.append(
            [s["id"], s["at"], s["status"], s["snapshot"], paths, s["actor"], s["error"] or ""]
        )
    print(table(rows))
    return 0


async def cmd_unschedule(client: AdminClient, args: argparse.Namespace) -> int:
    await _call(client, "DELETE", f"/v1/sites/{args.site}/schedules/{args.id}")
    print(f"{args.site}: schedule {args.id} cancelled")
    return 0


async def cmd_refresh(client: AdminClient, args: argparse.Namespace) -> int:
    answer = await _call(
        client, "POST", f"/v1/sites/{args.site}/refresh", json={"force": args.force}
    )
    print(_moved(args.site, "staging", answer))
    return 0


async def cmd_rollback(client: AdminClient, args: argparse.Namespace) -> int:
    body = {"to": args.to} if args.to else {}
    answer = await _call(client, "POST", f"/v1/sites/{args.site}/rollback", json=body)
    print(_moved(args.site, "production", answer))
    return 0


async def cmd_gc(client: AdminClient, args: argparse.Namespace) -> int:
    answer = await _call(
        client, "POST", f"/v1/sites/{args.site}/gc", json={"dry_run": args.dry_run}
    )
    verb = "would remove" if answer["dry_run"] else "removed"
    print(
        f"{args.site}: {verb} {len(answer['snapshots'])} snapshot(s),"
        f" {answer['blobs']} blob(s), {answer['bytes']} bytes"
    )
    for snapshot_id in answer["snapshots"]:
        print(f"  {snapshot_id}")
    return 0


async def cmd_history(client: AdminClient, args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit)}
    if args.env:
        params["env"] = args.env
    answer = await _call(client, "GET", f"/v1/sites/{args.site}/history", params=params)
    rows = [["at (UTC)", "env", "action", "from", "to", "by", "message"]]
    for h in answer["history"]:
        rows.append(
            [
                h["at"],
                h["env"],
                h["action"],
                h["from"] or "-",
                h["to"],
                h["actor"],
                _one_line(h.get("message") or ""),
            ]
        )
    print(table(rows))
    return 0


def _one_line(message: str, width: int = 60) -> str:
    line = " ".join(message.split())
    return line if len(line) <= width else line[: width - 1] + "…"


async def cmd_diff(client: AdminClient, args: argparse.Namespace) -> int:
    """The publish's dry run; ``--raw``: the manifest diff between two snapshots."""
    if not args.raw:
        if (args.from_, args.to) != ("production", "staging"):
            raise PushError("--from and --to compare two snapshots: add --raw")
        return await _preview(client, args.site, {})
    params = {"from": args.from_, "to": args.to}
    d = await _call(client, "GET", f"/v1/sites/{args.site}/diff", params=params)
    print(f"{args.from_} ({d['from'] or 'none'}) -> {args.to} ({d['to'] or 'none'})")
    rows = [["change", "path"]]
    rows += [["added", p] for p in d["added"]]
    rows += [["removed", p] for p in d["removed"]]
    rows += [["changed", p] for p in d["changed"]]
    if d["settings_changed"]:
        rows.append(["changed", "(settings)"])
    print(table(rows) if len(rows) > 1 else "no differences")
    return 0


async def cmd_status(client: AdminClient, args: argparse.Namespace) -> int:
    envs = await _call(client, "GET", f"/v1/sites/{args.site}/environments")
    rows = [["environment", "snapshot", "base", "updated (UTC)", "by", "message"]]
    for env in ("staging", "production"):
        p = envs[env]
        rows.append(
            [
                env,
                p["snapshot"] or "-",
                p.get("base") or "-",
                p["updated_at"] or "-",
                p.get("actor") or "-",
                _one_line(p.get("message") or ""),
            ]
        )
    print(table(rows))
    staging, production = envs["staging"], envs["production"]
    if staging["snapshot"] and staging.get("base") != production["snapshot"]:
        print("\nproduction moved since staging's base (drift): publish will merge")
    return 0


async def cmd_inbox_delete(client: AdminClient, args: argparse.Namespace) -> int:
    """``edge inbox --delete``: one submission (``--id``) or many; says how many went."""
    path = f"/v1/sites/{args.site}/forms/{args.env}"
    if args.id is not None:
        if args.before or args.form:
            raise SystemExit("edge inbox: --id deletes one submission; drop --before/--form")
        await _call(client, "DELETE", f"{path}/{args.id}")
        print(f"deleted submission {args.id} from the {args.site} {args.env} inbox")
        return 0
    params = {}
    if args.before:
        params["before"] = args.before
    if args.form:
        params["form"] = args.form
    answer = await _call(client, "DELETE", path, params=params)
    print(f"deleted {answer['deleted']} submission(s) from the {args.site} {args.env} inbox")
    return 0


async def cmd_sites(client: AdminClient, args: argparse.Namespace) -> int:
    """The sites this token sees, with their hosts and both pointers."""
    answer = await _call(client, "GET", "/v1/sites")
    caller = answer["caller"]
    scope = "every site" if "*" in caller["sites"] or caller["role"] == "admin" else "its sites"
    print(f"token {caller['name']} ({caller['role']}, {scope})")
    rows = [["site", "staging", "production", "production hosts", "staging hosts"]]
    for site in answer["sites"]:
        envs = await _call(client, "GET", f"/v1/sites/{site['id']}/environments")
        rows.append(
            [
                site["id"],
                envs["staging"]["snapshot"] or "-",
                envs["production"]["snapshot"] or "-",
                ", ".join(site["production"]["hosts"]) or "-",
                ", ".join(site["staging"]["hosts"]) or "-",
            ]
        )
    print(table(rows) if len(rows) > 1 else "(no site)")
    return 0


async def cmd_inbox(client: AdminClient, args: argparse.Namespace) -> int:
    if args.delete:
        return await cmd_inbox_delete(client, args)
    if args.before or args.id is not None:
        raise SystemExit("edge inbox: --before and --id go with --delete")
    params = {"limit": str(args.limit)}
    if args.form:
        params["form"] = args.form
    answer = await _call(client, "GET", f"/v1/sites/{args.site}/forms/{args.env}", params=params)
    rows = [["id", "at (UTC)", "form", "fields"]]
    for s in answer["submissions"]:
        fields = ", ".join(
            f"{k}={'|'.join(v) if isinstance(v, list) else v}" for k, v in s["fields"].items()
        )
        rows.append([str(s["id"]), s["at"], s["form"], fields[:120]])
    print(f"{args.site} {args.env} inbox")
    print(table(rows) if len(rows) > 1 else "(empty)")
    return 0


async def cmd_nodes(client: AdminClient, args: argparse.Namespace) -> int:
    """Every registered node; exit status 1 when a live node is behind the cluster."""
    answer = await _call(client, "GET", "/v1/nodes")
    if answer["backend"] != "postgres":
        print(f"{answer['backend']} store: one machine, no node registry")
        return 0
    rows = [["node", "generation", "state", "last heartbeat (UTC)", "started (UTC)"]]
    behind = 0
    for n in answer["nodes"]:
        if not n["live"]:
            state = "silent"
        elif n["current"]:
            state = "current"
        else:
            state = "behind"
            behind += 1
        rows.append([n["name"], str(n["generation"]), state, n["seen_at"], n["started_at"]])
    print(f"cluster generation {answer['generation']}")
    print(table(rows) if len(rows) > 1 else "(no node registered)")
    return 1 if behind else 0
