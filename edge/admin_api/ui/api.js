// The admin API client of the dashboard: the token lives in sessionStorage only
// (this tab, until it closes), never in localStorage or a cookie, and travels as
// "Authorization: Bearer" on each call.

const TOKEN_KEY = "edge.admin-token";

// The API next to this page: /ui/ -> /v1/ (also right behind a path prefix).
const API_ROOT = new URL("../v1/", document.baseURI);

export const tokenStore = {
  get() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** A failed call: the server's status, error code and message, and its extra fields. */
export class ApiError extends Error {
  constructor(status, doc) {
    const error = (doc && doc.error) || {};
    super(error.message || `the admin API answered ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
    this.doc = doc || {};
  }

  /** The paths the server listed with the error (drift conflicts, lost work, ...). */
  get paths() {
    for (const key of ["conflicts", "paths", "missing"]) {
      if (Array.isArray(this.doc[key])) return this.doc[key].map(String);
    }
    return [];
  }
}

/** One call; resolves to {doc, etag}; rejects with ApiError. */
export async function call(method, path, { body, ifMatch, token } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = token || tokenStore.get();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch) headers["If-Match"] = ifMatch;
  let response;
  try {
    response = await fetch(new URL(path, API_ROOT), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch (exc) {
    throw new ApiError(0, {
      error: { code: "network", message: `cannot reach the admin API (${exc.message})` },
    });
  }
  const text = await response.text();
  let doc = null;
  if (text) {
    try {
      doc = JSON.parse(text);
    } catch {
      doc = { error: { code: "bad_answer", message: text.slice(0, 300) } };
    }
  }
  if (!response.ok) throw new ApiError(response.status, doc);
  return { doc, etag: response.headers.get("ETag") };
}

/** "sites/acme/publish" for a site id and a sub-path. */
export function sitePath(site, rest) {
  return `sites/${encodeURIComponent(site)}/${rest}`;
}
