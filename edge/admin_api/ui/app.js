// The operator dashboard: sign in, read the site's state from the admin API, and
// run the actions (each after an in-page confirmation). State is re-read every few
// seconds and right after a scheduled launch's moment.

import { ApiError, call, sitePath, tokenStore } from "./api.js";
import { anyDialogOpen, chooseDriftWay, confirmAction } from "./dialogs.js";
import { h, localInputToUtc, localTime, offsetLabel, timeZone, toLocalInput } from "./dom.js";
import {
  diffEntries,
  hasDrift,
  previewItems,
  renderAnalytics,
  renderDiff,
  renderDrift,
  renderEnvironments,
  renderHistory,
  renderInboxes,
  renderSchedules,
} from "./panels.js";

const POLL_MS = 4000;
const EXTRAS_EVERY = 4; // forms and analytics: every 4th poll
const HISTORY_PAGE = 30;
const HISTORY_MAX = 500;
const GREETING_MS = 10_000; // "Signed in as ..." then goes away

const $ = (id) => document.getElementById(id);

const state = {
  directory: null, // GET /v1/sites
  site: null, // the chosen site's id
  envs: null,
  etag: null,
  history: [],
  historyLimit: HISTORY_PAGE,
  diff: null,
  productionChanges: null, // diff staging's base -> production, while drifted
  schedules: [],
  forms: {},
  analytics: {},
  selected: new Set(),
  conflicts: new Set(),
  acting: false, // a state-changing action is running
  polling: false, // a periodic re-read is running
  reads: 0, // reads started; a read older than the last one drawn is dropped
  drawn: 0,
  polls: 0,
  timer: null,
  launchTimer: null,
  statusTimer: null,
  rendered: "",
};

// -- messages -------------------------------------------------------------------------

/**
 * The status line. What an action did stays until the next message; a greeting
 * (``fade``) goes away by itself: who is signed in stays shown in the top bar.
 */
function say(text, { fade = false } = {}) {
  $("status").textContent = text;
  clearTimeout(state.statusTimer);
  if (!text || !fade) return;
  state.statusTimer = setTimeout(() => {
    if ($("status").textContent === text) $("status").textContent = "";
  }, GREETING_MS);
}

function showError(error, context) {
  const message = error instanceof ApiError ? error.message : String(error.message || error);
  const code = error instanceof ApiError && error.status ? ` (${error.status} ${error.code})` : "";
  $("error-message").textContent = `${context ? `${context}: ` : ""}${message}${code}`;
  const paths = error instanceof ApiError ? error.paths : [];
  $("error-paths").replaceChildren(...paths.map((p) => h("li", {}, h("code", {}, p))));
  $("error-paths").hidden = paths.length === 0;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error-message").textContent = "";
  $("error-paths").replaceChildren();
}

// -- who and which site ----------------------------------------------------------------

function caller() {
  return state.directory ? state.directory.caller : { role: "editor" };
}

function canPublish() {
  return caller().role === "publisher" || caller().role === "admin";
}

function siteInfo() {
  return state.directory.sites.find((s) => s.id === state.site);
}

function showSignIn() {
  stopPolling();
  state.directory = null;
  $("dashboard").hidden = true;
  $("session-controls").hidden = true;
  $("signin").hidden = false;
  $("token-input").value = "";
  $("token-input").focus();
}

async function signIn(token, { quiet = false } = {}) {
  try {
    const { doc } = await call("GET", "sites", { token });
    tokenStore.set(token);
    state.directory = doc;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) tokenStore.clear();
    showSignIn();
    showError(error, quiet ? "Signed out" : "Sign-in failed");
    return;
  }
  clearError();
  $("token-input").value = ""; // kept in sessionStorage only, not in the form
  $("signin").hidden = true;
  $("session-controls").hidden = false;
  const who = state.directory.caller;
  $("caller").replaceChildren("Signed in as ", h("strong", {}, who.name), ` (${who.role})`);
  const select = $("site-select");
  select.replaceChildren(
    ...state.directory.sites.map((s) => h("option", { value: s.id }, s.id)),
  );
  if (state.directory.sites.length === 0) {
    $("dashboard").hidden = true;
    say("");
    showError(new Error(`the token ${who.name} sees no site`), "Nothing to show");
    return;
  }
  const wanted = new URLSearchParams(location.hash.slice(1)).get("site");
  const sites = state.directory.sites;
  const chosen = sites.some((s) => s.id === wanted) ? wanted : sites[0].id;
  select.value = chosen;
  await chooseSite(chosen);
  say(`Signed in as ${who.name}.`, { fade: true });
}

function signOut() {
  tokenStore.clear();
  clearError();
  say("Signed out: the token is forgotten.");
  showSignIn();
}

async function chooseSite(id) {
  state.site = id;
  state.envs = null;
  state.selected = new Set();
  state.conflicts = new Set();
  state.historyLimit = HISTORY_PAGE;
  state.forms = {};
  state.analytics = {};
  state.rendered = "";
  history.replaceState(null, "", `#site=${encodeURIComponent(id)}`);
  $("site-name").textContent = id;
  $("dashboard").setAttribute("aria-busy", "true"); // until this site's state is drawn
  for (const button of actionButtons()) button.disabled = true;
  document.title = `${id} · edge`;
  $("dashboard").hidden = false;
  await reload({ extras: true });
  startPolling();
}

// -- reading state ----------------------------------------------------------------------

async function loadCore(read) {
  const site = state.site;
  const [envs, diff, schedules, hist] = await Promise.all([
    call("GET", sitePath(site, "environments")),
    call("GET", sitePath(site, "diff?from=production&to=staging")),
    call("GET", sitePath(site, "schedules?limit=100")),
    call("GET", sitePath(site, `history?limit=${state.historyLimit}`)),
  ]);
  let productionChanges = null;
  if (hasDrift(envs.doc) && envs.doc.staging.base && envs.doc.production.snapshot) {
    const from = encodeURIComponent(envs.doc.staging.base);
    productionChanges = (await call("GET", sitePath(site, `diff?from=${from}&to=production`))).doc;
  }
  // The operator switched sites meanwhile, or a later read (after an action) was
  // drawn already: this older answer must not overwrite it.
  if (site !== state.site || read < state.drawn) return;
  state.drawn = read;
  state.envs = envs.doc;
  state.etag = envs.etag;
  state.diff = diff.doc;
  state.productionChanges = productionChanges;
  state.schedules = schedules.doc.schedules;
  state.history = hist.doc.history;
  $("history-more").hidden = !hist.doc.next || state.historyLimit >= HISTORY_MAX;
}

async function settle(promise) {
  try {
    return { doc: (await promise).doc };
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw error;
    return { error };
  }
}

async function loadExtras() {
  const site = state.site;
  const [fs, fp, as, ap] = await Promise.all([
    settle(call("GET", sitePath(site, "forms/staging?limit=20"))),
    settle(call("GET", sitePath(site, "forms/production?limit=20"))),
    settle(call("GET", sitePath(site, "analytics/staging"))),
    settle(call("GET", sitePath(site, "analytics/production"))),
  ]);
  if (site !== state.site) return;
  state.forms = { staging: fs, production: fp };
  state.analytics = { staging: as, production: ap };
}

/** Re-read the site's state and redraw what changed. */
async function reload({ extras = false } = {}) {
  const read = ++state.reads;
  try {
    await Promise.all([loadCore(read), extras ? loadExtras() : null]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      tokenStore.clear();
      showSignIn();
      showError(error, "The token is no longer accepted; sign in again");
      return false;
    }
    showError(error, "Reading the site's state failed");
    return false;
  }
  if (!state.directory) return false; // signed out meanwhile
  render();
  armLaunchTimer();
  return true;
}

// -- drawing ------------------------------------------------------------------------------

/** Paths production changed since staging's base (while drifted). */
function productionChangedPaths() {
  const d = state.productionChanges;
  return new Set(d ? [...d.added, ...d.removed, ...d.changed] : []);
}

function render() {
  if (!state.envs || !state.directory) return;
  const site = siteInfo();
  const entries = diffEntries(state.diff);
  const present = new Set(entries.map((e) => e.path));
  for (const path of [...state.selected]) if (!present.has(path)) state.selected.delete(path);
  for (const path of [...state.conflicts]) if (!present.has(path)) state.conflicts.delete(path);

  // Redraw only when something changed: a poll must not reset what the operator is doing.
  const signature = JSON.stringify([
    state.envs, state.diff, state.productionChanges, state.schedules, state.history,
    state.forms, state.analytics, [...state.selected], [...state.conflicts], canPublish(),
    Math.floor(Date.now() / 30000), // relative times ("2 min ago") move on
  ]);
  if (signature === state.rendered) return;
  state.rendered = signature;
  $("dashboard").setAttribute("aria-busy", "false");

  const active = document.activeElement;
  const focusKey = active && active.getAttribute ? active.getAttribute("aria-label") : null;

  renderEnvironments($("env-cards"), {
    envs: state.envs,
    site,
    history: state.history,
    canPublish: canPublish(),
    onRefresh: () => refreshStaging(),
    onRollback: (to) => rollback(to),
  });
  renderDrift($("drift"), state.envs, state.productionChanges);
  const productionChanged = productionChangedPaths();
  renderDiff($("diff"), {
    siteId: state.site,
    diff: state.diff,
    envs: state.envs,
    site,
    selected: state.selected,
    conflicts: state.conflicts,
    productionChanged,
    onSelect: (path, on) => {
      if (on) state.selected.add(path);
      else state.selected.delete(path);
      render();
    },
    onSelectAll: (paths, on) => {
      for (const p of paths) {
        if (on) state.selected.add(p);
        else state.selected.delete(p);
      }
      render();
    },
  });
  renderSchedules($("schedules"), state.schedules, {
    canPublish: canPublish(),
    onCancel: (s) => cancelSchedule(s),
  });
  renderHistory($("history"), state.history, {
    currentProduction: state.envs.production.snapshot,
    canPublish: canPublish(),
    onRollback: (to) => rollback(to),
  });
  if (state.forms.staging) renderInboxes($("forms"), state.forms);
  if (state.analytics.staging) renderAnalytics($("analytics"), state.analytics);
  updateActions(entries);

  if (focusKey) {
    const again = [...document.querySelectorAll("[aria-label]")].find(
      (el) => el.getAttribute("aria-label") === focusKey,
    );
    if (again) again.focus();
  }
}

function actionButtons() {
  return [
    $("publish-all"),
    $("publish-selected"),
    $("schedule-form").querySelector('button[type="submit"]'),
  ];
}

/** The state an action describes and acts on; null until the site has been read. */
function ready() {
  if (state.envs && state.diff && state.directory && !state.acting) return true;
  say(state.acting ? "Another action is still running." : "Still reading the site's state…");
  return false;
}

function updateActions(entries) {
  const publisher = canPublish();
  const hasStaging = Boolean(state.envs.staging.snapshot);
  const pending = entries.length > 0 || state.diff.settings_changed || hasDrift(state.envs);
  const count = state.selected.size;
  $("publish-all").disabled = !publisher || !hasStaging || !pending;
  $("publish-selected").disabled = !publisher || count === 0;
  $("publish-selected").textContent = `Publish selected paths (${count})`;
  $("settings-choice").hidden = !state.diff.settings_changed;
  const schedule = $("schedule-form").querySelector('button[type="submit"]');
  schedule.disabled = !publisher || !hasStaging;
  for (const el of document.querySelectorAll(".needs-publisher")) el.hidden = publisher;
  $("publish-actions").dataset.role = caller().role;
  if (!publisher) {
    $("publish-all").title = $("publish-selected").title = schedule.title =
      `the ${caller().role} role cannot publish; a publisher or admin token can`;
  }
}

// -- polling ----------------------------------------------------------------------------------

function stopPolling() {
  clearInterval(state.timer);
  clearTimeout(state.launchTimer);
  state.timer = state.launchTimer = null;
}

function startPolling() {
  clearInterval(state.timer);
  state.timer = setInterval(async () => {
    if (state.acting || state.polling || anyDialogOpen() || document.hidden) return;
    if (!state.directory) return;
    state.polls += 1;
    state.polling = true;
    try {
      await reload({ extras: state.polls % EXTRAS_EVERY === 0 });
    } finally {
      state.polling = false;
    }
  }, POLL_MS);
}

/** Re-read right after the next pending launch's moment, not only at the next poll. */
function armLaunchTimer() {
  clearTimeout(state.launchTimer);
  const next = state.schedules
    .filter((s) => s.status === "pending")
    .map((s) => Date.parse(s.at))
    .filter((t) => !Number.isNaN(t))
    .sort((a, b) => a - b)[0];
  // Overdue but still pending (the scheduler is at it): the regular re-read will show it.
  if (next === undefined || next < Date.now() - 2000) return;
  const wait = Math.min(Math.max(next - Date.now() + 250, 250), 2 ** 31 - 1);
  state.launchTimer = setTimeout(() => {
    if (!state.acting && state.directory) reload();
  }, wait);
}

// -- actions ----------------------------------------------------------------------------------

/** Run one state-changing call; report success or the server's error text, then re-read. */
async function act(label, run) {
  if (state.acting) {
    say("Another action is still running.");
    return undefined;
  }
  state.acting = true;
  clearError();
  say(`${label}…`);
  try {
    const message = await run();
    if (message) say(message);
    return true;
  } catch (error) {
    if (error.reported) {
      say(""); // a dialog says it already: once is enough
    } else {
      say(`${label} failed.`);
      showError(error, `${label} failed`);
    }
    return false;
  } finally {
    state.acting = false;
    await reload({ extras: true });
  }
}

/**
 * POST a pointer move, valid only while the environments are as this page last
 * read them (If-Match: a 412 instead of overwriting someone else's move).
 */
function guarded(action, body, ifMatch = state.etag) {
  return call("POST", sitePath(state.site, action), { body, ifMatch });
}

function short(id) {
  return id || "(none)";
}

function preconditionHint(error) {
  if (error instanceof ApiError && error.status === 412) {
    error.message =
      `${error.message}. Someone else moved an environment: ` +
      "the page now shows the new state; check it and try again";
  }
  return error;
}

async function publish({ paths = null, force = false, ifMatch = state.etag } = {}) {
  const body = {};
  if (paths) {
    body.paths = paths;
    if ($("include-settings").checked && state.diff.settings_changed) body.settings = true;
  }
  if (force) body.force = true;
  try {
    const { doc } = await guarded("publish", body, ifMatch);
    if (doc.action === null) return "Nothing to publish: production already serves this.";
    return (
      `Published (${doc.action}): production now serves ${doc.production} ` +
      `(was ${short(doc.previous)}).`
    );
  } catch (error) {
    throw preconditionHint(error);
  }
}

async function publishAll() {
  if (!ready()) return;
  // The confirmation is the publish's own dry run: what production would become, with
  // production's fixes the merge keeps, or the refusal the publish would meet.
  // Both are bound to the environments as they are now (the page may still be
  // re-reading them): what was previewed is what gets published, or a 412.
  let preview;
  let etag;
  try {
    etag = (await call("GET", sitePath(state.site, "environments"))).etag;
    preview = (await guarded("publish", { dry_run: true }, etag)).doc;
  } catch (error) {
    if (error instanceof ApiError && error.code === "drift") {
      await resolveDrift(error, etag);
    } else {
      showError(preconditionHint(error), "Preparing the publish failed");
    }
    return;
  }
  if (preview.action === null) {
    say("Nothing to publish: production already serves this.");
    return;
  }
  const merged = preview.action === "merge-publish";
  const ok = await confirmAction({
    title: "Publish all of staging to production?",
    env: "production",
    message:
      `Production (now ${short(preview.production)}) will serve staging's snapshot ` +
      `${short(preview.staging)}` +
      (merged
        ? ", merged with the changes made on production since staging's base (those are kept)."
        : ".") +
      (preview.settings_changed ? " Staging's settings go live too." : ""),
    items: previewItems(preview),
    confirmLabel: "Publish to production",
  });
  if (!ok) return;
  let drifted = null;
  await act("Publishing", async () => {
    try {
      return await publish({ ifMatch: etag });
    } catch (error) {
      if (error instanceof ApiError && error.code === "drift") {
        drifted = error; // production moved since the preview: the drift dialog says so
        error.reported = true;
      }
      throw error;
    }
  });
  if (drifted) await resolveDrift(drifted, etag);
}

/** After a 409 drift (``etag``: the environments it was computed on). */
async function resolveDrift(error, etag = state.etag) {
  const conflicts = error.paths;
  state.conflicts = new Set(conflicts);
  render();
  const choice = await chooseDriftWay(error.message, conflicts);
  if (choice === "refresh") {
    await refreshStaging();
  } else if (choice === "select") {
    // Pre-select what is safe: staging's own changes, not the conflicts and not
    // production's fixes (publishing those paths from staging would undo them).
    const productionChanged = productionChangedPaths();
    state.selected = new Set(
      diffEntries(state.diff)
        .map((e) => e.path)
        .filter((p) => !state.conflicts.has(p) && !productionChanged.has(p)),
    );
    render();
    say(
      `Selected the ${state.selected.size} path(s) that changed on staging only; ` +
        `conflicting paths are marked. Adjust the selection, then use "Publish selected paths".`,
    );
    $("diff").scrollIntoView({ block: "start" });
    $("publish-selected").focus();
  } else if (choice === "force") {
    const forced = error.doc.if_forced; // the dry run's preview of the forced publish
    const ok = await confirmAction({
      title: "Force the publish?",
      env: "production",
      message:
        "Staging's version wins on the conflicting paths: production's changes to them " +
        "are overwritten (they stay in history). Other production changes are kept.",
      items: forced ? previewItems(forced) : conflicts,
      confirmLabel: "Force publish to production",
    });
    if (!ok) return;
    const forcing = () => publish({ force: true, ifMatch: etag });
    if (await act("Force-publishing", forcing)) state.conflicts.clear();
    render();
  }
}

async function publishSelected() {
  if (!ready()) return;
  const paths = [...state.selected].sort();
  if (paths.length === 0) return;
  const withSettings = $("include-settings").checked && state.diff.settings_changed;
  const ok = await confirmAction({
    title: `Publish ${paths.length} selected path${paths.length === 1 ? "" : "s"} to production?`,
    env: "production",
    message:
      "Production keeps everything else; these paths are taken from staging (a path staging " +
      `lacks is removed from production)${withSettings ? ", and staging's settings go live" : ""}.`,
    items: paths,
    confirmLabel: "Publish selected paths",
  });
  if (!ok) return;
  if (await act("Publishing selected paths", () => publish({ paths }))) {
    state.selected.clear();
    state.conflicts.clear();
    render();
  }
}

async function schedule(event) {
  event.preventDefault();
  if (!ready()) return;
  const input = $("schedule-at");
  const at = localInputToUtc(input.value);
  if (!at) {
    showError(new Error("choose a date and time"), "Scheduling");
    input.focus();
    return;
  }
  const what = document.querySelector('input[name="schedule-what"]:checked');
  const onlySelected = what.value === "selected";
  const paths = onlySelected ? [...state.selected].sort() : null;
  if (onlySelected && paths.length === 0) {
    showError(new Error("select at least one path in the list of changes"), "Scheduling");
    return;
  }
  const past = Date.parse(at) <= Date.now();
  const ok = await confirmAction({
    title: "Schedule a launch?",
    env: "production",
    message:
      `At ${localTime(at)} (${timeZone}; ${at} UTC), production gets ` +
      `${paths ? `${paths.length} selected path(s)` : "all"} of staging's snapshot ` +
      `${short(state.envs.staging.snapshot)} as it is now.` +
      (past ? " That moment has passed: it goes live at once." : ""),
    items: paths || [],
    confirmLabel: "Schedule the launch",
  });
  if (!ok) return;
  const body = { at };
  if (paths) {
    body.paths = paths;
    if ($("include-settings").checked && state.diff.settings_changed) body.settings = true;
  }
  await act("Scheduling", async () => {
    const { doc } = await call("POST", sitePath(state.site, "schedules"), { body });
    return `Scheduled ${doc.id} for ${localTime(doc.at)} (${doc.at} UTC).`;
  });
}

async function cancelSchedule(s) {
  if (!ready()) return;
  const ok = await confirmAction({
    title: "Cancel this scheduled launch?",
    env: "production",
    message:
      `The launch at ${localTime(s.at)} (${s.at} UTC) of snapshot ${s.snapshot} ` +
      "will not happen.",
    items: s.paths || [],
    confirmLabel: "Cancel the launch",
    cancelLabel: "Keep it",
  });
  if (!ok) return;
  await act("Cancelling the schedule", async () => {
    await call("DELETE", sitePath(state.site, `schedules/${encodeURIComponent(s.id)}`));
    return `Cancelled the launch at ${localTime(s.at)}.`;
  });
}

async function refreshStaging() {
  if (!ready()) return;
  const ok = await confirmAction({
    title: "Refresh staging from production?",
    env: "staging",
    message:
      `Staging (now ${short(state.envs.staging.snapshot)}) will serve production's snapshot ` +
      `${short(state.envs.production.snapshot)}. Its current snapshot stays in history.`,
    confirmLabel: "Refresh staging",
    danger: false,
  });
  if (!ok) return;
  let lost = null;
  await act("Refreshing staging", async () => {
    try {
      const { doc } = await guarded("refresh", {});
      return doc.action === null
        ? "Staging already serves production's snapshot."
        : `Refreshed: staging now serves ${doc.staging} (was ${short(doc.previous)}).`;
    } catch (error) {
      if (error instanceof ApiError && error.status === 409 && error.paths.length) lost = error;
      throw preconditionHint(error);
    }
  });
  if (!lost) return;
  const force = await confirmAction({
    title: "Staging holds work production lacks. Refresh anyway?",
    env: "staging",
    message:
      `${lost.message}. These paths of staging are set aside; snapshot ` +
      `${short(state.envs.staging.snapshot)} stays in history.`,
    items: lost.paths,
    confirmLabel: "Force the refresh",
  });
  if (!force) return;
  await act("Force-refreshing staging", async () => {
    const { doc } = await guarded("refresh", { force: true });
    state.conflicts.clear();
    return `Refreshed: staging now serves ${doc.staging} (was ${short(doc.previous)}).`;
  });
}

async function rollback(to) {
  if (!ready()) return;
  const ok = await confirmAction({
    title: "Roll back production?",
    env: "production",
    message: to
      ? `Production goes from ${short(state.envs.production.snapshot)} back to ${to}.`
      : `Production goes from ${short(state.envs.production.snapshot)} back to the snapshot ` +
        "it served before.",
    confirmLabel: "Roll back production",
  });
  if (!ok) return;
  await act("Rolling back", async () => {
    const body = to ? { to } : {};
    try {
      const { doc } = await guarded("rollback", body);
      return doc.action === null
        ? "Production already serves that snapshot."
        : `Rolled back: production now serves ${doc.production} (was ${short(doc.previous)}).`;
    } catch (error) {
      throw preconditionHint(error);
    }
  });
}

// -- start -----------------------------------------------------------------------------------

function defaultLaunchTime() {
  const d = new Date(Date.now() + 60 * 60 * 1000);
  d.setMinutes(0, 0, 0);
  return toLocalInput(d);
}

function wire() {
  $("tz-hint").textContent =
    `Times are in your time zone, ${timeZone} (${offsetLabel()}); edge stores them in UTC.`;
  $("schedule-at").value = defaultLaunchTime();
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (token) signIn(token);
  });
  $("signout-button").addEventListener("click", signOut);
  $("reload-button").addEventListener("click", async () => {
    clearError();
    if (await reload({ extras: true })) say("Reloaded.");
  });
  $("site-select").addEventListener("change", (event) => chooseSite(event.target.value));
  $("publish-all").addEventListener("click", publishAll);
  $("publish-selected").addEventListener("click", publishSelected);
  $("schedule-form").addEventListener("submit", schedule);
  $("history-more").addEventListener("click", async () => {
    state.historyLimit = Math.min(state.historyLimit + 50, HISTORY_MAX);
    await reload();
  });
  $("error-dismiss").addEventListener("click", clearError);
}

wire();
const saved = tokenStore.get();
if (saved) signIn(saved, { quiet: true });
else showSignIn();
