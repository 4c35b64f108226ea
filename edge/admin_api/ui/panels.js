// The dashboard's panels: plain functions from API answers to DOM nodes.
// Actions are callbacks given by app.js; nothing here calls the API.

import { viewsChart } from "./chart.js";
import {
  ENV_LABEL,
  envBadge,
  externalLink,
  h,
  hostUrl,
  pathUrl,
  put,
  snapshotCode,
  timeEl,
} from "./dom.js";

const ENVS = ["staging", "production"];

function table(caption, headings, rows, className = "") {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: className },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
    ),
  );
}

// -- environments -------------------------------------------------------------------

/** Is production somewhere staging has not seen (an emergency fix, a rollback)? */
export function hasDrift(envs) {
  return Boolean(envs.staging.snapshot) && envs.production.snapshot !== envs.staging.base;
}

function lastMoveOf(history, env, pointer) {
  return history.find((e) => e.env === env && e.to === pointer.snapshot) || null;
}

function envCard(env, ctx) {
  const pointer = ctx.envs[env];
  const site = ctx.site[env];
  const move = lastMoveOf(ctx.history, env, pointer);
  const rows = [
    ["Snapshot", snapshotCode(pointer.snapshot, `snapshot-${env}`)],
    [
      "Moved",
      pointer.updated_at
        ? [
            timeEl(pointer.updated_at),
            " by ",
            h("strong", {}, pointer.actor || (move && move.actor) || "unknown"),
            move ? [" (", h("span", { class: "action-name" }, move.action), ")"] : null,
          ]
        : h("span", { class: "muted" }, "never"),
    ],
  ];
  if (env === "staging") {
    const drift = hasDrift(ctx.envs);
    rows.push([
      "Base",
      [
        snapshotCode(pointer.base, "base-staging"),
        " ",
        pointer.snapshot
          ? h(
              "span",
              { class: drift ? "tag tag-warn" : "tag tag-ok" },
              drift ? "production moved since" : "in sync with production",
            )
          : null,
      ],
    ]);
  }
  rows.push([
    "Hosts",
    site.hosts.length
      ? h(
          "ul",
          { class: "hosts" },
          site.hosts.map((host) =>
            h("li", {}, externalLink(hostUrl(site.url, host), host, `Open ${host} (${env})`)),
          ),
        )
      : h("span", { class: "muted" }, "no host"),
  ]);

  const actions = [];
  if (env === "staging") {
    actions.push(
      h(
        "button",
        {
          type: "button",
          class: "staging-action",
          disabled: !ctx.canPublish || !ctx.envs.production.snapshot,
          onclick: ctx.onRefresh,
        },
        "Refresh staging from production",
      ),
    );
  } else {
    actions.push(
      h(
        "button",
        {
          type: "button",
          class: "danger",
          disabled: !ctx.canPublish || !pointer.snapshot,
          onclick: () => ctx.onRollback(null),
        },
        "Roll back to previous",
      ),
    );
  }
  const titleId = `env-title-${env}`;
  return h(
    "article",
    { class: `env-card env-${env}`, "aria-labelledby": titleId, "data-testid": `env-${env}` },
    h(
      "header",
      { class: "env-card-head" },
      envBadge(env),
      h("h3", { id: titleId }, env === "staging" ? "Staging (preview)" : "Production (live)"),
    ),
    h(
      "dl",
      { class: "facts" },
      rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
    ),
    h("div", { class: "actions" }, actions),
  );
}

export function renderEnvironments(container, ctx) {
  put(container, ...ENVS.map((env) => envCard(env, ctx)));
}

/** The warning shown while production moved since staging's base. */
export function renderDrift(container, envs, productionChanges) {
  if (!hasDrift(envs)) {
    container.hidden = true;
    put(container);
    return;
  }
  const { staging, production } = envs;
  const changed = productionChanges
    ? [
        ...productionChanges.added.map((p) => [p, "added"]),
        ...productionChanges.removed.map((p) => [p, "removed"]),
        ...productionChanges.changed.map((p) => [p, "changed"]),
      ].sort()
    : [];
  container.hidden = false;
  put(
    container,
    h("h3", {}, "Drift: production moved since staging's base"),
    h(
      "p",
      {},
      "Staging was last synced with production ",
      snapshotCode(staging.base),
      "; production now serves ",
      snapshotCode(production.snapshot),
      production.updated_at ? [" (", timeEl(production.updated_at), ")"] : null,
      ". Publishing everything merges the two: production's changes are kept, staging's taken; " +
        "a path changed differently on both sides is refused until you choose.",
    ),
    changed.length
      ? [
          h("p", {}, "Changed on production since staging's base:"),
          h(
            "ul",
            { class: "paths", "data-testid": "drift-paths" },
            changed.map(([path, kind]) => h("li", {}, h("code", {}, path), ` (${kind})`)),
          ),
        ]
      : null,
  );
}

// -- the diff -------------------------------------------------------------------------

export function diffEntries(diff) {
  if (!diff) return [];
  return [
    ...diff.added.map((path) => ({ path, kind: "added" })),
    ...diff.removed.map((path) => ({ path, kind: "removed" })),
    ...diff.changed.map((path) => ({ path, kind: "changed" })),
  ].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * A publish's dry run (POST publish {"dry_run": true}) as the confirmation's lines:
 * what production gains, loses and changes, and the production fixes it keeps.
 */
export function previewItems(preview) {
  const conflicts = new Set(preview.conflicts || []);
  const lines = [
    ...preview.added.map((path) => [path, `added: ${path}`]),
    ...preview.removed.map((path) => [path, `removed: ${path}`]),
    ...preview.changed.map((path) => [
      path,
      conflicts.has(path) ? `changed, staging's version wins: ${path}` : `changed: ${path}`,
    ]),
  ].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const items = lines.map(([, line]) => line);
  if (preview.settings_changed) items.push("changed: the site's settings");
  items.push(...preview.kept.map((path) => `kept (production fix): ${path}`));
  return items;
}

export function renderDiff(container, ctx) {
  const { diff, envs, site } = ctx;
  if (!envs.staging.snapshot) {
    put(
    container,
      h(
        "p",
        { class: "muted" },
        "Staging has no snapshot yet: push one with ",
        h("code", {}, `edge push DIR --site ${ctx.siteId}`),
        ".",
      ),
    );
    return;
  }
  const entries = diffEntries(diff);
  const note = diff.settings_changed
    ? h(
        "p",
        { class: "note", "data-testid": "settings-changed" },
        "Staging's settings (redirects, headers, forms) differ from production's: publishing " +
          "everything includes them; with selected paths, tick the box below to include them.",
      )
    : null;
  if (entries.length === 0) {
    put(
    container,
      h(
        "p",
        { class: "muted", "data-testid": "diff-empty" },
        diff.settings_changed
          ? "No page differs between staging and production."
          : "Staging and production serve the same content.",
      ),
      note,
    );
    return;
  }
  const allSelected = entries.every((e) => ctx.selected.has(e.path));
  const selectAll = h("input", {
    type: "checkbox",
    "aria-label": "Select every path",
    checked: allSelected,
    onchange: (event) => ctx.onSelectAll(entries.map((e) => e.path), event.target.checked),
  });
  const rows = entries.map(({ path, kind }) => {
    const tags = [h("span", { class: `tag tag-${kind}` }, kind)];
    if (ctx.conflicts.has(path)) tags.push(h("span", { class: "tag tag-conflict" }, "conflict"));
    else if (ctx.productionChanged.has(path)) {
      tags.push(
        h(
          "span",
          { class: "tag tag-warn", title: "changed on production since staging's base" },
          "production fix",
        ),
      );
    }
    return h(
      "tr",
      { "data-path": path, class: ctx.conflicts.has(path) ? "row-conflict" : "" },
      h(
        "td",
        { class: "select" },
        h("input", {
          type: "checkbox",
          "aria-label": `Select ${path}`,
          checked: ctx.selected.has(path),
          onchange: (event) => ctx.onSelect(path, event.target.checked),
        }),
      ),
      h("td", { class: "path" }, h("code", {}, path)),
      h("td", {}, tags),
      h(
        "td",
        { class: "open-links" },
        ENVS.map((env) => {
          const href = pathUrl(site[env].url, path);
          return href
            ? externalLink(href, ENV_LABEL[env].toLowerCase(), `Open ${path} on ${env}`)
            : null;
        }),
      ),
    );
  });
  put(
    container,
    table(
      `${entries.length === 1 ? "1 path differs" : `${entries.length} paths differ`}: ` +
        `production ${diff.from || "(none)"} → staging ${diff.to || "(none)"}`,
      [selectAll, "Path", "Change", "Open on"],
      rows,
      "diff-table",
    ),
    note,
  );
}

// -- schedules and history -------------------------------------------------------------

/** Puts the note in the container when there is nothing to list (and says so). */
function saidEmpty(container, items, note) {
  if (items.length > 0) return false;
  put(container, h("p", { class: "muted" }, note));
  return true;
}

/** A row's small button, usable only by a token that may publish. */
function publishButton(ctx, kind, label, ariaLabel, onclick) {
  return h(
    "button",
    {
      type: "button",
      class: `${kind} small`,
      disabled: !ctx.canPublish,
      "aria-label": ariaLabel,
      onclick,
    },
    label,
  );
}

const STATUS_ORDER = { pending: 0, failed: 1, done: 2, cancelled: 3 };

export function sortSchedules(schedules) {
  const byTime = (a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0);
  const pending = schedules.filter((s) => s.status === "pending").sort(byTime);
  const rest = schedules
    .filter((s) => s.status !== "pending")
    .sort((a, b) => byTime(b, a) || STATUS_ORDER[a.status] - STATUS_ORDER[b.status]);
  return [...pending, ...rest.slice(0, 20)];
}

export function renderSchedules(container, schedules, ctx) {
  const shown = sortSchedules(schedules);
  if (saidEmpty(container, shown, "No schedules.")) return;
  const rows = shown.map((s) =>
    h(
      "tr",
      { "data-schedule": s.id, "data-status": s.status },
      h("td", {}, timeEl(s.at)),
      h(
        "td",
        {},
        s.paths
          ? [
              `${s.paths.length} path${s.paths.length === 1 ? "" : "s"}: `,
              h("code", {}, s.paths.join(", ")),
            ]
          : "all of staging",
        s.settings ? " + settings" : "",
      ),
      h("td", {}, snapshotCode(s.snapshot)),
      h(
        "td",
        {},
        h("span", { class: `tag tag-status-${s.status}` }, s.status),
        s.error ? h("span", { class: "schedule-error" }, ` ${s.error}`) : null,
      ),
      h("td", {}, s.actor || ""),
      h(
        "td",
        {},
        s.status === "pending"
          ? publishButton(ctx, "secondary", "Cancel", `Cancel the schedule at ${s.at}`, () =>
              ctx.onCancel(s),
            )
          : null,
      ),
    ),
  );
  put(
    container,
    table(null, ["When", "What", "Snapshot", "Status", "By", ""], rows, "schedules-table"),
  );
}

export function renderHistory(container, history, ctx) {
  if (saidEmpty(container, history, "Nothing has moved yet.")) return;
  const rows = history.map((e) =>
    h(
      "tr",
      { "data-history": e.id, "data-env": e.env },
      h("td", {}, timeEl(e.at)),
      h("td", {}, envBadge(e.env)),
      h("td", {}, h("span", { class: "action-name" }, e.action)),
      h("td", { class: "move" }, snapshotCode(e.from), " → ", snapshotCode(e.to)),
      h("td", {}, e.actor),
      h("td", { class: "message" }, e.message || h("span", { class: "muted" }, "—")),
      h(
        "td",
        {},
        e.env === "production" && e.to !== ctx.currentProduction
          ? publishButton(
              ctx,
              "danger",
              "Roll back to this",
              `Roll production back to ${e.to}`,
              () => ctx.onRollback(e.to),
            )
          : e.env === "production" && e.to === ctx.currentProduction
            ? h("span", { class: "tag tag-ok" }, "live")
            : null,
      ),
    ),
  );
  put(
    container,
    table(
      null,
      ["When", "Environment", "Action", "From → to", "By", "Message", ""],
      rows,
      "history-table",
    ),
  );
}

// -- what stays per environment ----------------------------------------------------------

function envColumn(env, testid, title, body) {
  return h(
    "article",
    { class: `env-card env-${env}`, "data-testid": `${testid}-${env}` },
    h("header", { class: "env-card-head" }, envBadge(env), h("h3", {}, title)),
    body,
  );
}

function fieldValue(value) {
  return Array.isArray(value) ? value.join(", ") : String(value);
}

/** One column per environment: loading, its error, or what ``render(env, doc)`` makes of it. */
function putEnvColumns(container, results, testid, title, render) {
  put(
    container,
    ...ENVS.map((env) => {
      const result = results[env];
      let body;
      if (!result) body = h("p", { class: "muted" }, "Loading…");
      else if (result.error) body = h("p", { class: "inline-error" }, result.error.message);
      else body = render(env, result.doc);
      return envColumn(env, testid, title, body);
    }),
  );
}

/** ``results``: {staging: {doc} | {error}, production: ...} of the forms API. */
export function renderInboxes(container, results) {
  putEnvColumns(container, results, "inbox", "Inbox", (env, doc) => {
    if (doc.submissions.length === 0) return h("p", { class: "muted" }, "No submissions yet.");
    return h(
      "ol",
      { class: "submissions" },
      doc.submissions.map((s) =>
        h(
          "li",
          { class: "submission", "data-submission": s.id },
          h("p", { class: "submission-head" }, h("strong", {}, s.form), " · ", timeEl(s.at)),
          h(
            "dl",
            { class: "fields" },
            Object.entries(s.fields).map(([name, value]) => [
              h("dt", {}, name),
              h("dd", {}, fieldValue(value)),
            ]),
          ),
        ),
      ),
    );
  });
}

export function renderAnalytics(container, results) {
  putEnvColumns(container, results, "views", "Page views", (env, doc) => {
    const perPath = new Map();
    for (const row of doc.paths) perPath.set(row.path, (perPath.get(row.path) || 0) + row.views);
    const topRows = [...perPath].sort((a, b) => b[1] - a[1]).slice(0, 5);
    const total = h(
      "p",
      { class: "total" },
      h("strong", { "data-testid": `views-total-${env}` }, String(doc.total)),
      " page views",
    );
    if (doc.total === 0) {
      const empty = `No page views on ${env} from ${doc.from} to ${doc.to} (UTC days) yet.`;
      return [
        total,
        h("p", { class: "muted chart-empty", "data-testid": `views-empty-${env}` }, empty),
      ];
    }
    return [
      total,
      viewsChart(doc, env, `chart-title-${env}`),
      topRows.length
        ? table(
            "Most viewed",
            ["Path", "Views"],
            topRows.map(([path, views]) =>
              h(
                "tr",
                {},
                h("td", {}, h("code", {}, path)),
                h("td", { class: "num" }, String(views)),
              ),
            ),
            "top-paths",
          )
        : null,
    ];
  });
}
