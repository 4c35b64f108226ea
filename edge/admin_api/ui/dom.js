// DOM helpers. Server-provided text only ever enters the page as text nodes or
// attribute values (never as markup): there is no innerHTML anywhere in the UI.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "checked" || key === "disabled" || key === "hidden") {
      el[key] = Boolean(value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("p", {class: "x"}, "text", h("code", {}, id)). */
export function h(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** Replace ``container``'s children (nested arrays flattened, null and false dropped). */
export function put(container, ...children) {
  container.replaceChildren();
  return fill(container, {}, children);
}

/** An SVG element, same calling convention as h(). */
export function svg(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export const ENV_LABEL = { staging: "STAGING", production: "PRODUCTION" };

/** The unmistakable environment label: colour and an upper-case word. */
export function envBadge(env) {
  return h("span", { class: `env-badge env-${env}` }, ENV_LABEL[env] || String(env).toUpperCase());
}

export function snapshotCode(id, testid) {
  if (!id) return h("span", { class: "muted", "data-testid": testid }, "none yet");
  return h("code", { class: "snapshot", "data-testid": testid, title: id }, id);
}

// -- time ---------------------------------------------------------------------------

export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

const localFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  timeZoneName: "short",
});

function parse(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** "Nov 26, 2026, 10:00:05 GMT+1" in the operator's time zone. */
export function localTime(iso) {
  const d = iso ? parse(iso) : null;
  return d ? localFormat.format(d) : iso || "—";
}

/** "3 min ago" / "in 2 h". */
export function relativeTime(iso, now = Date.now()) {
  const d = iso ? parse(iso) : null;
  if (!d) return "";
  const seconds = Math.round((d.getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  let text;
  if (abs < 5) return "just now";
  if (abs < 90) text = `${abs} s`;
  else if (abs < 90 * 60) text = `${Math.round(abs / 60)} min`;
  else if (abs < 36 * 3600) text = `${Math.round(abs / 3600)} h`;
  else text = `${Math.round(abs / 86400)} days`;
  return seconds < 0 ? `${text} ago` : `in ${text}`;
}

/** A <time> showing local time, with the UTC moment in its title and datetime. */
export function timeEl(iso, { relative = true } = {}) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const rel = relative ? relativeTime(iso) : "";
  return h(
    "span",
    { class: "when" },
    h("time", { datetime: iso, title: `UTC ${iso}` }, localTime(iso)),
    rel ? h("span", { class: "rel" }, ` (${rel})`) : null,
  );
}

/** "UTC+05:30" for the operator's offset at ``date``. */
export function offsetLabel(date = new Date()) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, "0");
  const mm = String(abs % 60).padStart(2, "0");
  return `UTC${sign}${hh}:${mm}`;
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** A Date as a datetime-local value ("2026-11-26T10:00:00") in the operator's zone. */
export function toLocalInput(date) {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** A datetime-local value (the operator's zone) as RFC 3339 UTC, or null. */
export function localInputToUtc(value) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value || "")) return null;
  const d = new Date(value); // no offset in the string: the local time zone (ECMA-262)
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

// -- links to the sites ---------------------------------------------------------------

/** A visitor URL for ``path`` under ``base`` ("http://acme.example:8080"). */
export function pathUrl(base, path) {
  if (!base) return null;
  const encoded = String(path)
    .split("/")
    .map((segment) => encodeURIComponent(segment))
    .join("/");
  return base + (encoded.startsWith("/") ? encoded : `/${encoded}`);
}

/** The same scheme and port as ``base``, on another ``host``. */
export function hostUrl(base, host) {
  if (!base) return null;
  const url = new URL(base);
  return `${url.protocol}//${host}${url.port ? `:${url.port}` : ""}/`;
}

export function externalLink(href, text, label) {
  return h(
    "a",
    { href, target: "_blank", rel: "noopener noreferrer", "aria-label": label || undefined },
    text,
  );
}
