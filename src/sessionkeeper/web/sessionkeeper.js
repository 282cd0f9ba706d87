// sessionkeeper.js: one api client for every call a single-page app makes to its protected API.
//
// A logged-in user should never see "session expired" unless the session is really gone. The
// usual causes, each handled here (see docs/browser.md):
//   - calls that bypass the shared client (downloads via window.location, stray fetch calls):
//     `api.fetch`, `api.json` and `api.download` are the only way to /api;
//   - no silent refresh: the access token is refreshed ahead of expiry, while the tab is visible
//     and at once on wake-up, and a 401 gets one refresh and one retry;
//   - refresh races: one refresh at a time per tab (a shared promise) and across tabs (Web Locks,
//     storage re-read inside the lock, BroadcastChannel to share the result);
//   - a failed refresh that signs the user out: network errors and 5xx keep the session and back
//     off; only a definitive refusal (after re-reading storage) enters the "needs re-auth" state,
//     which keeps the page's state, queues requests and shows <session-expired-banner>.
//
// Cookie mode (`cookieSession`): the session lives in HttpOnly cookies set by the server's session
// bridge; the page keeps only a marker and sends the CSRF header instead of a bearer token.
// `createSessionListener` mirrors a supabase-js session into those cookies.
//
// No build step and no dependency: import it as an ES module from wherever the server serves it
// (`sessionkeeper serve` and `sessionkeeper demo` serve it at /sessionkeeper.js).

export const SIGNED_IN = "SIGNED_IN";
export const TOKEN_REFRESHED = "TOKEN_REFRESHED";
export const SIGNED_OUT = "SIGNED_OUT";
export const NEEDS_REAUTH = "NEEDS_REAUTH";
export const REAUTHENTICATED = "REAUTHENTICATED";

/** The session is gone (or never was): the app has to sign the user in again. */
export class AuthExpiredError extends Error {
  constructor(message = "the session has ended; sign in again", { reason } = {}) {
    super(message);
    this.name = "AuthExpiredError";
    this.reason = reason;
  }
}

/** The auth server could not be reached or answered 5xx: the session is kept, try later. */
export class IssuerUnavailableError extends Error {
  constructor(message, { status } = {}) {
    super(message);
    this.name = "IssuerUnavailableError";
    this.status = status;
  }
}

/** The auth server refused a request for good (a 4xx with an error code). */
export class IssuerError extends Error {
  constructor(message, { status, code } = {}) {
    super(message);
    this.name = "IssuerError";
    this.status = status;
    this.code = code;
  }
}

/** A non-2xx answer from the API to `api.json` / `api.download` (not an auth failure). */
export class ApiError extends Error {
  constructor(response, body) {
    super(`${response.status} ${response.statusText || ""}`.trim());
    this.name = "ApiError";
    this.status = response.status;
    this.response = response;
    this.body = body;
  }
}

// 4xx answers that mean "not now" rather than "never": same rule as the Python client.
const TRANSIENT_4XX = new Set([408, 409, 425, 429]);
const API_VERSION = "2024-01-01";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** First 8 hex chars of the token's SHA-256: what logs may show instead of a token. */
export async function fingerprint(token) {
  if (!token) return "-";
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return "?";
  const digest = await subtle.digest("SHA-256", new TextEncoder().encode(token));
  return Array.from(new Uint8Array(digest).slice(0, 4), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A session in the shape both token sources hand to the api client.
 * `expires_at` is computed from `expires_in` against the local clock at receipt, never from the
 * token's `exp` against a local clock that may be wrong.
 */
export function normalizeSession(body, nowMs) {
  if (!body || typeof body !== "object" || typeof body.access_token !== "string" || !body.access_token) {
    return null;
  }
  return {
    access_token: body.access_token,
    refresh_token: typeof body.refresh_token === "string" && body.refresh_token ? body.refresh_token : null,
    token_type: body.token_type || "bearer",
    ...localExpiry(body, nowMs),
    user: body.user && typeof body.user === "object" ? body.user : null,
  };
}

/** `expires_in`, `received_at` and `expires_at_local` (local epoch seconds) of a session or marker. */
function localExpiry(body, nowMs) {
  const expiresIn = Number(body.expires_in);
  const lifetime = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 3600;
  const receivedAt = Number.isFinite(Number(body.received_at)) ? Number(body.received_at) : nowMs / 1000;
  const expiresAt = Number.isFinite(Number(body.expires_at_local))
    ? Number(body.expires_at_local)
    : receivedAt + lifetime;
  return { expires_in: lifetime, received_at: receivedAt, expires_at_local: expiresAt };
}

/**
 * A cookie session's stand-in (cookie mode): who is signed in and until when, never a token. The
 * tokens live in HttpOnly cookies the page cannot read. `marker` is a random id per sign-in (what
 * tabs compare, and key shared refusals by); `rev` changes with every refresh; `skew` is the
 * server-minus-local clock offset in seconds, learnt from the server's answers.
 */
export function normalizeMarker(body, nowMs) {
  if (!body || typeof body !== "object" || typeof body.marker !== "string" || !body.marker) return null;
  const user = body.user && typeof body.user === "object" ? body.user : null;
  return {
    transport: "cookie",
    marker: body.marker,
    rev: typeof body.rev === "string" ? body.rev : "",
    ...localExpiry(body, nowMs),
    skew: Number.isFinite(Number(body.skew)) ? Number(body.skew) : 0,
    user: user && { id: user.id ?? null, email: user.email ?? null },
  };
}

/** What a call made with `session` presented: the access token, or a cookie marker's revision. */
function credentialOf(session) {
  return session.transport === "cookie" ? `cookie:${session.marker}:${session.rev}` : session.access_token;
}

/** What a refresh of `session` spends, shared by every tab holding it: the refresh token, or the
 * cookie session's marker (the server holds its refresh token). Null: nothing to refresh with. */
function grantOf(session) {
  return session.transport === "cookie" ? `cookie:${session.marker}` : session.refresh_token;
}

function randomId() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** One call to an auth endpoint: a network error, a time-out or a failure answer becomes an
 * IssuerUnavailableError (transient) or an IssuerError (definitive). */
async function callIssuer(fetchImpl, url, { method, headers, body, timeout, credentials = "omit", what }) {
  let response;
  try {
    response = await fetchImpl(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeout),
      credentials,
      cache: "no-store",
    });
  } catch (error) {
    throw new IssuerUnavailableError(`${what}: ${error && error.name === "TimeoutError" ? "timed out" : "network error"}`);
  }
  if (!response.ok) throw await issuerFailure(response, what);
  return response;
}

/** Sort an auth-server failure: definitive (IssuerError) or transient (IssuerUnavailableError). */
async function issuerFailure(response, what) {
  const body = await readJson(response);
  const code = body && (body.error_code || body.code || body.error);
  const status = response.status;
  if (status >= 500 || TRANSIENT_4XX.has(status) || !code || typeof code !== "string") {
    // A 4xx without an auth error code (a proxy's HTML 404, say) is not a verdict on the session.
    return new IssuerUnavailableError(`${what}: the auth server answered ${status}`, { status });
  }
  const message = (body && (body.msg || body.message || body.error_description)) || code;
  return new IssuerError(`${what}: ${message}`, { status, code });
}

/**
 * One localStorage entry: `read()` is the normalised record, null when there is none, or
 * undefined when it cannot be read ("unknown", never "signed out": an unreadable entry is left
 * alone). After a failed write (full or blocked storage: the record stays in memory and other
 * tabs learn it by message) an empty entry is unknown too, not a sign-out elsewhere.
 */
function storedEntry(storage, key, normalize, now) {
  let unsaved = false;
  return {
    read() {
      let raw;
      try {
        raw = storage.getItem(key);
      } catch {
        return undefined;
      }
      if (raw === null || raw === undefined) return unsaved ? undefined : null;
      try {
        return normalize(JSON.parse(raw), now()) || undefined;
      } catch {
        return undefined;
      }
    },
    write(record) {
      try {
        storage.setItem(key, JSON.stringify(record));
        unsaved = false;
      } catch {
        unsaved = true;
      }
    },
    remove() {
      unsaved = false;
      try {
        storage.removeItem(key);
      } catch {
        /* nothing to clear */
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// sessionkeeper's own small auth client: talks to a GoTrue-compatible /auth/v1, keeps the
// session in localStorage.
// ---------------------------------------------------------------------------------------------

/**
 * Token source for `createApiClient` backed by sessionkeeper's (or any GoTrue-compatible) auth
 * API. It only makes calls and keeps storage; refresh timing, locks and retries are the api
 * client's job.
 */
export function createAuthClient({
  url = "/auth/v1",
  storageKey = "sessionkeeper.session",
  storage = globalThis.localStorage,
  fetch: fetchImpl = (...args) => globalThis.fetch(...args),
  apiKey = null,
  timeout = 10000,
  now = () => Date.now(),
} = {}) {
  const base = url.replace(/\/+$/, "");
  const headers = { "Content-Type": "application/json", "X-Supabase-Api-Version": API_VERSION, "X-Client-Info": "sessionkeeper-js" };
  if (apiKey) headers.apikey = apiKey;

  const call = (method, path, { body, token, what } = {}) =>
    callIssuer(fetchImpl, `${base}${path}`, {
      method,
      headers: token ? { ...headers, Authorization: `Bearer ${token}` } : headers,
      body,
      timeout,
      what,
    });

  async function sessionFrom(response, what) {
    const session = normalizeSession(await readJson(response), now());
    if (!session) throw new IssuerUnavailableError(`${what}: the answer held no session`);
    return session;
  }

  const entry = storedEntry(storage, storageKey, normalizeSession, now);

  return {
    kind: "sessionkeeper",
    storageKey,
    /** The stored session, or null. An unreadable entry is left alone (never taken as sign-out). */
    async load() {
      return entry.read();
    },
    async save(session) {
      entry.write(session);
    },
    async clear() {
      entry.remove();
    },
    async signIn({ email, password }) {
      const response = await call("POST", "/token?grant_type=password", { body: { email, password }, what: "sign-in" });
      return sessionFrom(response, "sign-in");
    },
    async refresh(session) {
      const response = await call("POST", "/token?grant_type=refresh_token", {
        body: { refresh_token: session.refresh_token },
        what: "refresh",
      });
      return sessionFrom(response, "refresh");
    },
    async signOut(session, { scope = "local" } = {}) {
      if (!session) return;
      await call("POST", `/logout?scope=${encodeURIComponent(scope)}`, { token: session.access_token, what: "sign-out" });
    },
    /** GET /user: the issuer's own verdict on an access token. */
    async user(session) {
      const response = await call("GET", "/user", { token: session.access_token, what: "user" });
      return readJson(response);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Adapter around an @supabase/supabase-js client.
// ---------------------------------------------------------------------------------------------

/**
 * Token source for `createApiClient` around a supabase-js client: supabase-js keeps the session
 * and talks to the auth server; the api client decides when to refresh and serialises refreshes
 * across tabs. supabase-js's own refresh (if `autoRefreshToken` is on) is seen through
 * `onAuthStateChange` and adopted.
 */
export function supabaseTokens(supabase, { now = () => Date.now() } = {}) {
  const auth = supabase.auth;
  // supabase-js keeps `expires_at` in the server's epoch seconds. A local clock that is wrong by
  // more than a token's life would make every session look due (a refresh per call), so the
  // server-minus-local offset is learnt from each session we receive and taken off.
  let skew = 0;
  const learn = (s) => {
    if (s && Number(s.expires_at) > 0 && Number(s.expires_in) > 0) {
      skew = Number(s.expires_at) - (now() / 1000 + Number(s.expires_in));
    }
  };
  const fromSupabase = (s) => {
    if (!s) return null;
    const lifetime = Number(s.expires_in) > 0 ? Number(s.expires_in) : 3600;
    const expiresAt = Number(s.expires_at) > 0 ? Number(s.expires_at) - skew : now() / 1000 + lifetime;
    return normalizeSession({ ...s, expires_in: lifetime, received_at: expiresAt - lifetime, expires_at_local: expiresAt }, now());
  };
  const failure = (error, what) => {
    const status = Number(error.status) || 0;
    if (!status || status >= 500 || TRANSIENT_4XX.has(status) || error.name === "AuthRetryableFetchError") {
      return new IssuerUnavailableError(`${what}: ${error.message}`, { status });
    }
    return new IssuerError(`${what}: ${error.message}`, { status, code: error.code || "unknown" });
  };
  // supabase-js announces the outcome of our own load, refresh or sign-in (TOKEN_REFRESHED,
  // SIGNED_IN, and SIGNED_OUT when it drops a session whose refresh was refused) before the call returns:
  // the api client acts on the returned value, so those events are not passed on.
  let own = 0;
  const ours = async (call) => {
    own += 1;
    try {
      return await call();
    } finally {
      own -= 1;
    }
  };
  return {
    kind: "supabase",
    storageKey: auth.storageKey || "supabase.auth.token",
    async load() {
      // getSession() refreshes a session within 90 s of expiry itself, and when that refresh is
      // refused it drops the session and says SIGNED_OUT: ours to judge (NEEDS_REAUTH), as with
      // refreshSession below.
      const { data, error } = await ours(() => auth.getSession());
      if (error) return undefined;
      return fromSupabase(data.session);
    },
    async save() {
      /* supabase-js stores what it receives */
    },
    async clear({ scope = "local" } = {}) {
      // supabase-js forgets the session and tells the server in one call, so it gets the caller's
      // scope: once forgotten locally there is nothing left to revoke "global" with.
      const { error } = await auth.signOut({ scope });
      if (error && scope !== "local") await auth.signOut({ scope: "local" }); // not told: forget it here anyway
    },
    async signIn({ email, password }) {
      const { data, error } = await ours(() => auth.signInWithPassword({ email, password }));
      if (error) throw failure(error, "sign-in");
      learn(data.session);
      return fromSupabase(data.session);
    },
    async refresh(session) {
      const { data, error } = await ours(() => auth.refreshSession({ refresh_token: session.refresh_token }));
      if (error) throw failure(error, "refresh");
      learn(data.session);
      const fresh = fromSupabase(data.session);
      if (!fresh) throw new IssuerUnavailableError("refresh: the answer held no session");
      return fresh;
    },
    async signOut(_session, { scope = "local" } = {}) {
      const { error } = await auth.signOut({ scope });
      if (error) throw failure(error, "sign-out");
    },
    /** Calls `listener(event, session)` when supabase-js changes the session on its own. */
    subscribe(listener) {
      const { data } = auth.onAuthStateChange((event, session) => {
        if (!own) listener(event, fromSupabase(session));
      });
      return () => data.subscription.unsubscribe();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Cookie sessions: the tokens live in HttpOnly cookies set by the server's session bridge.
// ---------------------------------------------------------------------------------------------

/** The header every cookie-mode request carries: the server's CSRF check for unsafe methods. */
export const CSRF_HEADER = "X-SessionKeeper-CSRF";
/** Set by the guard on an answer for which it refreshed the session itself (server epoch seconds). */
export const EXPIRES_HEADER = "X-Session-Expires-At";

/**
 * A marker for the bridge's answer `{user, expires_in, expires_at}` (`expires_at` in the server's
 * epoch seconds): local expiry from `expires_in` at receipt, and the server's clock offset.
 */
function markerFrom(answer, { id, previous = null, nowMs }) {
  const nowS = nowMs / 1000;
  const expiresIn = Number(answer?.expires_in) > 0 ? Number(answer.expires_in) : null;
  const expiresAt = Number(answer?.expires_at) > 0 ? Number(answer.expires_at) : null;
  let skew = previous?.skew ?? 0;
  if (expiresIn && expiresAt) skew = expiresAt - (nowS + expiresIn);
  const lifetime = expiresIn || (expiresAt && expiresAt - skew - nowS > 0 ? expiresAt - skew - nowS : previous?.expires_in || 3600);
  const user = answer?.user && typeof answer.user === "object" ? answer.user : previous?.user;
  return normalizeMarker({ marker: id, rev: randomId(), user, expires_in: lifetime, received_at: nowS, skew }, nowMs);
}

/**
 * Token source for `createApiClient` when the session lives in HttpOnly cookies (cookie mode): the
 * server's session bridge (`/auth/callback`, `/auth/refresh`, `/auth/session`) sets and refreshes
 * them; the page never sees a token. localStorage holds only a marker (user id and email, expiry,
 * a random id per sign-in) so that tabs agree on who is signed in and when to refresh.
 */
export function cookieSession({
  url = "/auth",
  authUrl = "/auth/v1",
  storageKey = "sessionkeeper.cookie-session",
  storage = globalThis.localStorage,
  fetch: fetchImpl = (...args) => globalThis.fetch(...args),
  apiKey = null,
  timeout = 10000,
  now = () => Date.now(),
  credentials = "same-origin",
} = {}) {
  if (credentials !== "same-origin" && credentials !== "include") {
    throw new TypeError('cookieSession: `credentials` must be "same-origin" or "include" (the session is a cookie)');
  }
  const base = url.replace(/\/+$/, "");
  // The password grant is the issuer's own (/auth/v1): its answer is handed to the bridge at once.
  const issuer = createAuthClient({ url: authUrl, storageKey, storage: null, fetch: fetchImpl, apiKey, timeout, now });
  const bridge = async (method, path, { body, what }) => {
    const headers = { [CSRF_HEADER]: "1", "X-Client-Info": "sessionkeeper-js" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await callIssuer(fetchImpl, `${base}${path}`, { method, headers, body, timeout, credentials, what });
    const answer = await readJson(response);
    if (!answer || typeof answer !== "object") throw new IssuerUnavailableError(`${what}: the answer was not JSON`);
    return answer;
  };

  const entry = storedEntry(storage, storageKey, normalizeMarker, now);
  let known = false; // this page has seen a marker, or the server's verdict: no more discovery
  let discovery = null;

  /** No marker here: ask the server once whether its cookies hold a session (a page back from
   * the hosted sign-in, say). 401: signed out; unreachable: unknown (asked again next time). */
  async function discover() {
    let answer;
    try {
      answer = await bridge("GET", "/session", { what: "session" });
    } catch (error) {
      if (!(error instanceof IssuerError)) return undefined;
      known = true;
      return null;
    }
    known = true;
    const marker = markerFrom(answer, { id: randomId(), nowMs: now() });
    await provider.save(marker);
    return marker;
  }

  const provider = {
    kind: "cookie",
    transport: "cookie",
    storageKey,
    /** The stored marker; without one, the server's word (asked once per page); null: signed out. */
    async load() {
      const stored = entry.read();
      if (stored) known = true;
      if (stored !== null || known) return stored;
      discovery ??= discover().finally(() => {
        discovery = null;
      });
      return discovery;
    },
    async save(session) {
      const marker = normalizeMarker(session, now()); // the marker's fields only, never a token
      if (!marker) return;
      known = true;
      entry.write(marker);
    },
    async clear() {
      known = true;
      entry.remove();
    },
    /** Password sign-in at the issuer; the tokens go straight to the bridge, which sets the
     * cookies, and are dropped here. Without credentials: the session the server's cookies hold
     * now (after the hosted sign-in, `popupSignIn`), or an IssuerError if there is none. */
    async signIn({ email, password } = {}) {
      if (email === undefined && password === undefined) {
        const answer = await bridge("GET", "/session", { what: "sign-in" });
        return markerFrom(answer, { id: randomId(), nowMs: now() });
      }
      const tokens = await issuer.signIn({ email, password });
      const { access_token, refresh_token, expires_in, token_type, user } = tokens;
      const answer = await bridge("POST", "/callback", {
        body: { event: SIGNED_IN, session: { access_token, refresh_token, expires_in, token_type, user } },
        what: "sign-in",
      });
      return markerFrom(answer, { id: randomId(), nowMs: now() });
    },
    /** The server refreshes with its refresh cookie: 401 is definitive, 5xx or no answer transient. */
    async refresh(marker) {
      const answer = await bridge("POST", "/refresh", { what: "refresh" });
      return markerFrom(answer, { id: marker.marker, previous: marker, nowMs: now() });
    },
    /** Clears the cookies and ends the session at the issuer (`scope`: local, global or others). */
    async signOut(_marker, { scope = "local" } = {}) {
      await bridge("POST", "/callback", { body: { event: SIGNED_OUT, session: null, scope }, what: "sign-out" });
    },
    /** GET /auth/session: the server's own verdict on the cookies. */
    async user() {
      return bridge("GET", "/session", { what: "user" });
    },
    /** A marker with the later expiry the guard announced (it refreshed during an API call), or null. */
    observe(marker, response) {
      const header = response?.headers?.get?.(EXPIRES_HEADER);
      const serverAt = header ? Number(header) : NaN;
      if (!Number.isFinite(serverAt) || !marker) return null;
      const localAt = serverAt - marker.skew;
      if (localAt <= marker.expires_at_local + 1 || localAt <= now() / 1000) return null;
      const fields = { ...marker, rev: randomId(), received_at: localAt - marker.expires_in, expires_at_local: localAt };
      return normalizeMarker(fields, now());
    },
  };
  return provider;
}

// ---------------------------------------------------------------------------------------------
// Session listener: supabase-js in the browser, a cookie-reading server behind it.
// ---------------------------------------------------------------------------------------------

/** supabase-js's events as the bridge's callback knows them (null: not passed on). */
function callbackEvent(event, session) {
  if (event === "SIGNED_OUT") return SIGNED_OUT;
  if (!session?.access_token) return null;
  if (event === "SIGNED_IN" || event === "INITIAL_SESSION") return SIGNED_IN;
  if (event === "TOKEN_REFRESHED" || event === "USER_UPDATED") return TOKEN_REFRESHED;
  return null;
}

/**
 * Mirrors a supabase-js session into the server's HttpOnly cookies: every sign-in, refresh and
 * sign-out supabase-js reports is posted to the session bridge (`POST /auth/callback`). Posts go
 * out one at a time, in order; a network error or 5xx is retried (`attempts` in all, waiting
 * `delays[i]` ms before retry i+1), a 4xx never; a newer event supersedes an older one not yet
 * delivered, so a stale TOKEN_REFRESHED never lands after SIGNED_OUT.
 * Returns `{ unsubscribe(), idle() }`; `idle()` resolves once nothing is left to post.
 */
export function createSessionListener(supabase, {
  url = "/auth/callback",
  fetch: fetchImpl = (...args) => globalThis.fetch(...args),
  attempts = 3,
  delays = [250, 1000],
  timeout = 10000,
  logger = globalThis.console,
  sleep: pause = sleep,
} = {}) {
  let pending = null; // the newest event not yet delivered (or given up on)
  let seq = 0;
  let owed = 0; // the latest SIGNED_IN the server has not acknowledged (its seq; 0: none)
  let worker = null;
  let wake = null; // ends the current back-off early when a newer event arrives

  const post = async (item, fields) => {
    // A sign-in the server has not acknowledged yet (superseded while failing) goes out as a
    // sign-in with the newer session.
    const event = item.event === TOKEN_REFRESHED && owed ? SIGNED_IN : item.event;
    fields.event = event;
    const response = await fetchImpl(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ event, session: item.session }),
      credentials: "same-origin",
      cache: "no-store",
      signal: AbortSignal.timeout(timeout),
    });
    fields.status = response.status;
    response.body?.cancel().catch(() => undefined);
    if (response.ok && event === SIGNED_IN && item.seq >= owed) owed = 0;
    return response.status;
  };

  async function deliver(item) {
    const fields = { event: item.event, token: await fingerprint(item.session?.access_token) };
    for (let attempt = 1; attempt <= attempts; attempt += 1) {
      let status;
      try {
        status = await post(item, fields);
      } catch (error) {
        fields.error = error?.name === "TimeoutError" ? "timed out" : "network error";
      }
      if (status !== undefined && status < 500) {
        if (status >= 300) logger?.warn?.("[sessionkeeper] session callback refused", { ...fields, attempt });
        else logger?.debug?.("[sessionkeeper] session callback delivered", { ...fields, attempt });
        return;
      }
      if (pending !== item) return; // superseded: the newer event goes next, this one is stale
      if (attempt < attempts) {
        logger?.debug?.("[sessionkeeper] session callback failed; retrying", { ...fields, attempt });
        await Promise.race([pause(delays[Math.min(attempt - 1, delays.length - 1)] ?? 0), new Promise((r) => (wake = r))]);
        wake = null;
        if (pending !== item) return;
      }
    }
    logger?.warn?.("[sessionkeeper] session callback failed; giving up", { ...fields, attempts });
  }

  async function run() {
    while (pending) {
      const item = pending;
      await deliver(item);
      if (pending === item) pending = null;
    }
    worker = null;
  }

  const { data } = supabase.auth.onAuthStateChange((event, session) => {
    const name = callbackEvent(event, session);
    if (!name) return;
    const item = {
      seq: (seq += 1),
      event: name,
      session: name === SIGNED_OUT ? null : {
        access_token: session.access_token,
        refresh_token: session.refresh_token,
        expires_in: session.expires_in,
        expires_at: session.expires_at,
        token_type: session.token_type,
        user: session.user ? { id: session.user.id, email: session.user.email } : undefined,
      },
    };
    if (name === SIGNED_IN) owed = item.seq;
    else if (name === SIGNED_OUT) owed = 0;
    pending = item;
    wake?.();
    worker ??= run();
  });

  return {
    unsubscribe: () => data.subscription.unsubscribe(),
    idle: async () => {
      while (worker) await worker;
    },
  };
}

/**
 * Opens the hosted sign-in (`GET /auth/login?next=...`, server-side PKCE) in a popup and resolves
 * once the popup is back on a page of this origin (the bridge then holds the new session's
 * cookies). For the banner: `banner.reauthenticate = (api) => popupSignIn().then(() => api.signIn())`.
 */
export function popupSignIn({ url = "/auth/login", next = "/", features = "popup,width=480,height=640", interval = 250, timeout = 300000 } = {}) {
  const target = `${url}${url.includes("?") ? "&" : "?"}next=${encodeURIComponent(next)}`;
  const popup = globalThis.open?.(target, "sessionkeeper-sign-in", features);
  if (!popup) return Promise.reject(new Error("the sign-in popup was blocked; allow popups and try again"));
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      let landed = false;
      try {
        // Readable only once the popup is back on our origin (elsewhere it throws or is blank).
        landed = popup.location.origin === globalThis.location.origin && popup.location.pathname === new URL(next, globalThis.location.href).pathname;
      } catch {
        /* still at the sign-in page of another origin */
      }
      if (landed || popup.closed || Date.now() - started > timeout) {
        clearInterval(timer);
        if (landed) {
          popup.close();
          resolve();
        } else reject(new Error(popup.closed ? "the sign-in window was closed" : "sign-in did not finish in time"));
      }
    }, interval);
  });
}

// ---------------------------------------------------------------------------------------------
// The api client.
// ---------------------------------------------------------------------------------------------

let defaultClient = null;

/** The client created first on this page: what a <session-expired-banner> attaches to. */
export function getDefaultClient() {
  return defaultClient;
}

/**
 * The one client for every call to the protected API.
 *
 * Options (all but `tokens` optional):
 *   baseUrl      prefix for relative paths ("/api")
 *   tokens       createAuthClient(...), supabaseTokens(supabaseClient) or cookieSession(...)
 *   transport    "bearer" (an Authorization header) or "cookie" (HttpOnly cookies + the CSRF
 *                header); by default the token source's. A mismatch is refused.
 *   credentials  fetch's credentials for API calls; cookie mode: "same-origin" (default) or
 *                "include" (an API on another origin)
 *   margin       refresh this many seconds before expiry (default 120, capped at half the life)
 *   lockTimeout  longest wait (ms) for the cross-tab refresh lock; then refresh without it
 *   reauthWait   how long (ms) a request made while re-authentication is needed waits for it
 *   refreshDeadline  how long (ms) a caller with an expired token waits for a failing issuer
 *   logger       console-like; routine lines at debug, failures at warn (never a token)
 */
export function createApiClient(options) {
  const client = new ApiClient(options);
  if (!defaultClient) defaultClient = client;
  globalThis.dispatchEvent?.(new CustomEvent("sessionkeeper:client", { detail: client }));
  return client;
}

/** The transport the token source implies, checked against the options asked for. */
function pickTransport(tokens, asked, credentials) {
  const implied = tokens.transport === "cookie" ? "cookie" : "bearer";
  if (asked !== null && asked !== "bearer" && asked !== "cookie") {
    throw new TypeError(`createApiClient: unknown transport ${JSON.stringify(asked)} (use "bearer" or "cookie")`);
  }
  if (asked === "cookie" && implied !== "cookie") {
    throw new TypeError(`createApiClient: transport "cookie" needs a cookie token source (cookieSession()); ${tokens.kind || "this source"} hands out bearer tokens`);
  }
  if (asked === "bearer" && implied === "cookie") {
    throw new TypeError('createApiClient: a cookieSession() has no token to send as a bearer header; use transport "cookie"');
  }
  if (implied === "cookie" && credentials !== null && credentials !== "same-origin" && credentials !== "include") {
    throw new TypeError('createApiClient: cookie transport needs credentials "same-origin" or "include" (else the session cookie is never sent)');
  }
  return implied;
}

export class ApiClient {
  constructor({
    baseUrl = "",
    tokens,
    margin = 120,
    lockTimeout = 10000,
    reauthWait = 300000,
    refreshDeadline = 30000,
    backoffInitial = 500,
    backoffMax = 30000,
    maxTimerDelay = 30000,
    fetch: fetchImpl = (...args) => globalThis.fetch(...args),
    locks = globalThis.navigator?.locks ?? null,
    BroadcastChannel: Channel = globalThis.BroadcastChannel ?? null,
    now = () => Date.now(),
    logger = globalThis.console,
    autoRefresh = true,
    transport = null,
    credentials = null,
  } = {}) {
    if (!tokens) throw new TypeError("createApiClient: `tokens` is required (createAuthClient(), supabaseTokens(client) or cookieSession())");
    this.transport = pickTransport(tokens, transport, credentials);
    this.credentials = credentials ?? (this.transport === "cookie" ? "same-origin" : null);
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.tokens = tokens;
    this.margin = margin;
    this.lockTimeout = lockTimeout;
    this.reauthWait = reauthWait;
    this.refreshDeadline = refreshDeadline;
    this.backoffInitial = backoffInitial;
    this.backoffMax = backoffMax;
    this.maxTimerDelay = maxTimerDelay;
    this._fetch = fetchImpl;
    this._locks = locks;
    this._now = now;
    this._log = logger;
    this.state = "signed_out"; // "signed_out" | "active" | "needs_reauth"
    this.session = null;
    this.stats = { refreshes: 0, recoveries: 0, adopted: 0 };
    this._listeners = new Set();
    this._flight = null;
    this._reauth = null; // { promise, resolve } while in needs_reauth
    this._retryAt = 0; // no proactive refresh before this (after a transient failure)
    this._failures = 0; // transient refresh failures in a row (the proactive back-off grows with them)
    this._recovered = null; // the token a 401-recovery produced; a 401 on it ends the session
    this._timer = null;
    this._closed = false;
    this._epoch = 0; // bumped by every sign-out: a refresh that started before it is discarded
    this._lockName = `sessionkeeper:refresh:${tokens.storageKey}`;
    this._channel = Channel ? new Channel(`sessionkeeper:${tokens.storageKey}`) : null;
    if (this._channel) this._channel.onmessage = (event) => this._onMessage(event.data);
    this._unsubscribe = tokens.subscribe ? tokens.subscribe((event, session) => this._onTokensEvent(event, session)) : null;
    this._autoRefresh = autoRefresh;
    this._onWake = () => this._tick();
    this._onStorage = (event) => {
      if (event.key === tokens.storageKey) this._syncFromStorage();
    };
    if (globalThis.addEventListener) {
      globalThis.addEventListener("storage", this._onStorage);
      for (const name of ["focus", "online", "pageshow"]) globalThis.addEventListener(name, this._onWake);
    }
    globalThis.document?.addEventListener?.("visibilitychange", this._onWake);
    globalThis.document?.addEventListener?.("resume", this._onWake);
    this.ready = this._start();
  }

  async _start() {
    const stored = await this.tokens.load();
    if (stored) {
      this.session = stored;
      this.state = "active";
      this._emit(SIGNED_IN, { restored: true });
    }
    this._schedule();
  }

  /** Stop timers and listeners (tests, or a page that tears the client down). */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    this._channel?.close();
    this._unsubscribe?.();
    if (globalThis.removeEventListener) {
      globalThis.removeEventListener("storage", this._onStorage);
      for (const name of ["focus", "online", "pageshow"]) globalThis.removeEventListener(name, this._onWake);
    }
    globalThis.document?.removeEventListener?.("visibilitychange", this._onWake);
    globalThis.document?.removeEventListener?.("resume", this._onWake);
  }

  /** `listener(event, detail)` for SIGNED_IN, TOKEN_REFRESHED, SIGNED_OUT, NEEDS_REAUTH, REAUTHENTICATED. */
  on(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  get user() {
    return this.session?.user ?? null;
  }

  // -- calls ------------------------------------------------------------------------------------

  /**
   * fetch() for the protected API: adds the token, refreshes ahead of expiry, and after a 401
   * refreshes once and retries once. Bodies must be replayable (string, Blob, FormData,
   * URLSearchParams, ArrayBuffer): a retried POST sends the same bytes again.
   */
  async fetch(path, init = {}) {
    const url = this._url(path);
    const session = await this._validSession();
    const first = await this._send(url, init, session);
    if (first.status !== 401) {
      if (first.ok) this._recovered = null;
      return first;
    }
    // A stream body was read by the first send and cannot be sent again: the caller gets the 401.
    if (init.body && typeof init.body.getReader === "function") return first;
    const sent = credentialOf(session);
    this._debug("401 from the API; recovering", { path: String(path) });
    first.body?.cancel().catch(() => undefined); // free the connection; the body is not needed
    const next = await this._recover(sent);
    const second = await this._send(url, init, next);
    if (second.status === 401) {
      // The API refuses a session the auth server just vouched for: refreshing again cannot help
      // (wrong issuer or audience on the API, a revoked session...). Ask for re-authentication.
      this._enterNeedsReauth("the API refused a freshly refreshed token");
      throw new AuthExpiredError("the API refused the session after a refresh", { reason: "refused_after_refresh" });
    }
    if (second.ok) this._recovered = null;
    return second;
  }

  /** GET (or `init`) and parse JSON; non-2xx answers throw ApiError. */
  async json(path, init = {}) {
    const response = await this.fetch(path, init);
    const body = await readJson(response);
    if (!response.ok) throw new ApiError(response, body);
    return body;
  }

  /**
   * Download through the client (fetch → Blob), never by navigating to a protected URL: a
   * navigation carries no Authorization header, and the 401 page it gets replaces the app.
   * In a page, the file is also saved under `filename` (or the server's Content-Disposition).
   */
  async download(path, { filename, save = true, init = {} } = {}) {
    const response = await this.fetch(path, init);
    if (!response.ok) throw new ApiError(response, await readJson(response));
    const blob = await response.blob();
    const name = filename || dispositionFilename(response.headers.get("Content-Disposition")) || "download";
    if (save && globalThis.document?.createElement) {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = name;
      link.rel = "noopener";
      link.style.display = "none";
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    }
    return { blob, filename: name };
  }

  // -- sign-in and sign-out ---------------------------------------------------------------------

  /** Sign in (also how the banner re-authenticates); queued requests then replay. */
  async signIn(credentials) {
    const session = await this.tokens.signIn(credentials);
    await this.tokens.save(session);
    this._install(session);
    this._broadcast({ type: "session" });
    return session;
  }

  /** Sign out here and in every tab: clear memory and storage, tell the server, stop timers. */
  async signOut({ scope = "local" } = {}) {
    const session = this.session;
    this._signedOut("signed out here");
    this._broadcast({ type: "signed_out" });
    await this.tokens.clear({ scope });
    if (session) {
      try {
        await this.tokens.signOut(session, { scope });
      } catch (error) {
        this._warn("sign-out: the server could not be told; the session was cleared here", { error: error.message });
      }
    }
  }

  // -- internals: the token a call should use -------------------------------------------------

  _url(path) {
    const text = String(path);
    if (/^https?:\/\//i.test(text)) return text;
    return `${this.baseUrl}${text.startsWith("/") ? "" : "/"}${text}`;
  }

  _send(url, init, session) {
    const headers = new Headers(init.headers || {});
    const credentials = init.credentials ?? this.credentials ?? undefined;
    if (this.transport === "bearer") {
      headers.set("Authorization", `Bearer ${session.access_token}`);
      return this._fetch(url, credentials ? { ...init, headers, credentials } : { ...init, headers });
    }
    // Cookie mode: the browser sends the session cookie; the header is the CSRF check's half.
    headers.set(CSRF_HEADER, "1");
    return this._fetch(url, { ...init, headers, credentials }).then((response) => {
      this._serverRefreshed(session, response);
      return response;
    });
  }

  /** Cookie mode: the guard refreshed the session during this call (a Set-Cookie the page cannot
   * see) and said until when: the marker takes the later expiry, here and in the other tabs. */
  _serverRefreshed(sent, response) {
    const current = this.session;
    if (this.state !== "active" || !current || current.marker !== sent.marker || !this.tokens.observe) return;
    const next = this.tokens.observe(current, response);
    if (!next) return;
    this._install(next, "server");
    this.tokens.save(next).then(() => this._broadcast({ type: "session" }));
  }

  _secondsLeft(session) {
    return session.expires_at_local - this._now() / 1000;
  }

  _due(session) {
    const window = Math.min(this.margin, session.expires_in / 2);
    return this._secondsLeft(session) <= window;
  }

  _expired(session) {
    return this._secondsLeft(session) <= 0;
  }

  /** The session a call should use: refreshed first when due; waits while re-auth is needed. */
  async _validSession() {
    await this.ready;
    for (;;) {
      if (this.state === "needs_reauth") await this._waitForReauth();
      const session = this.session;
      if (!session) throw new AuthExpiredError("not signed in", { reason: "signed_out" });
      if (!this._due(session) || (this._now() < this._retryAt && !this._expired(session))) return session;
      try {
        return await this._refresh(null, "proactive");
      } catch (error) {
        if (error instanceof IssuerUnavailableError && this.session && !this._expired(this.session)) {
          return this.session; // the token still works: the user notices nothing
        }
        if (error instanceof AuthExpiredError && this.state === "needs_reauth") continue;
        throw error;
      }
    }
  }

  /** After a 401 on `sent`: the session to retry with (one refresh, shared by everyone). */
  async _recover(sent) {
    this.stats.recoveries += 1;
    if (this.state === "active" && this.session && credentialOf(this.session) !== sent) {
      return this.session; // someone refreshed while this request was out
    }
    if (this._recovered === sent) {
      this._enterNeedsReauth("the API refused the token a 401-recovery produced");
    }
    if (this.state === "needs_reauth") return this._validSession();
    try {
      const fresh = await this._refresh(sent, "401");
      this._recovered = credentialOf(fresh);
      return fresh;
    } catch (error) {
      if (error instanceof AuthExpiredError && this.state === "needs_reauth") return this._validSession();
      throw error;
    }
  }

  // -- internals: refresh, single-flight in the tab and across tabs -----------------------------

  _refresh(failedToken, why) {
    if (!this._flight) {
      this._flight = this._refreshWithRetries(failedToken, why).finally(() => {
        this._flight = null;
      });
    }
    return this._flight;
  }

  async _refreshWithRetries(failedToken, why) {
    const deadline = this._now() + this.refreshDeadline;
    let delay = this.backoffInitial;
    for (;;) {
      try {
        const session = await this._withLock(() => this._refreshLocked(failedToken, why));
        this._retryAt = 0;
        this._failures = 0;
        return session;
      } catch (error) {
        if (!(error instanceof IssuerUnavailableError)) throw error;
        const current = this.session;
        // Consecutive failures push the next proactive attempt (timer, wake-up, a call whose
        // token still works) further out each time: an outage is not asked every backoffInitial.
        this._failures += 1;
        const pause = Math.min(this.backoffInitial * 2 ** Math.min(this._failures - 1, 30), this.backoffMax);
        this._retryAt = this._now() + pause;
        this._warn("refresh failed; the session is kept and the refresh retried", { error: error.message, retry_in_ms: pause });
        // A caller holding a still-valid token does not wait for the issuer to come back.
        if ((current && !this._expired(current) && failedToken === null) || this._now() + delay > deadline) throw error;
        await sleep(delay * (0.75 + Math.random() / 2));
        delay = Math.min(delay * 2, this.backoffMax);
      }
    }
  }

  /** Run `fn` holding the cross-tab lock; after `lockTimeout` run it anyway (never a deadlock). */
  async _withLock(fn) {
    if (!this._locks) return fn();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.lockTimeout);
    let acquired = false;
    try {
      return await this._locks.request(this._lockName, { signal: controller.signal }, async () => {
        acquired = true;
        clearTimeout(timer);
        return fn();
      });
    } catch (error) {
      if (!acquired && controller.signal.aborted) {
        // A tab frozen mid-refresh holds the lock: go ahead; the server's reuse interval
        // gives both refreshes the same answer.
        this._warn("refresh lock not granted in time; refreshing without it", { waited_ms: this.lockTimeout });
        return fn();
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async _refreshLocked(failedToken, why) {
    const epoch = this._epoch;
    const stored = await this.tokens.load(); // someone else may have refreshed while we waited
    if (stored === null && this.session) {
      this._signedOut("signed out in another tab");
      throw new AuthExpiredError("signed out in another tab", { reason: "signed_out" });
    }
    const base = stored || this.session;
    // Another tab refreshed while we waited for the lock (its message may even have been adopted
    // already): a session that is not due and not the one the API refused needs no refresh.
    if (base && credentialOf(base) !== failedToken && !this._due(base)) {
      this._adopt(base);
      return base;
    }
    if (!base) throw new AuthExpiredError("not signed in", { reason: "signed_out" });
    if (this.state === "needs_reauth") {
      // Another tab's refresh of this session was refused for good while we waited for the lock:
      // spending the same refresh token again can only be refused too.
      throw new AuthExpiredError("the session has ended (refused in another tab)", { reason: "needs_reauth" });
    }
    if (!grantOf(base)) {
      // An access token only (e.g. from an OAuth redirect): nothing to refresh with. After a 401,
      // ask the issuer once whether it still accepts the token, so the log says whose verdict it
      // was (a token the issuer accepts but the API refuses points at the API's configuration).
      let issuer = "not asked";
      if (failedToken && this.tokens.user) {
        issuer = await this.tokens.user(base).then(
          () => "accepts it",
          (error) => (error instanceof IssuerError ? `refuses it (${error.code})` : "unreachable"),
        );
      }
      this._enterNeedsReauth(`no refresh token; the issuer ${issuer}`);
      throw new AuthExpiredError("no refresh token; sign in again", { reason: "no_refresh_token" });
    }
    let fresh;
    // Every sign-out (here or in another tab, even one followed by a new sign-in) bumps the
    // epoch: a refresh that was on the wire meanwhile must not bring its session back, write it
    // to storage, or ask for re-authentication.
    const signedOutMeanwhile = () => new AuthExpiredError("signed out during the refresh", { reason: "signed_out" });
    try {
      this.stats.refreshes += 1;
      fresh = await this.tokens.refresh(base);
    } catch (error) {
      if (epoch !== this._epoch) throw signedOutMeanwhile();
      if (!(error instanceof IssuerError)) throw error;
      // Definitive. A newer token may have reached storage meanwhile (another tab): adopt it.
      const again = await this.tokens.load();
      if (epoch !== this._epoch) throw signedOutMeanwhile(); // a sign-out arrived meanwhile
      if (again && credentialOf(again) !== credentialOf(base) && !this._expired(again)) {
        this._adopt(again);
        return again;
      }
      this._enterNeedsReauth(error.code || "refresh refused");
      // The other tabs hold the same refresh token: tell them (by fingerprint) so they show the
      // banner now instead of each spending a refused refresh at its next call.
      // (Sent when the fingerprint is ready; nothing is awaited between the verdict and the throw,
      // so the callers see the state the verdict left.)
      fingerprint(grantOf(base)).then((refresh) => this._broadcast({ type: "refused", refresh, code: error.code }));
      throw new AuthExpiredError(`the session has ended (${error.code})`, { reason: error.code });
    }
    if (epoch !== this._epoch) throw signedOutMeanwhile();
    await this.tokens.save(fresh);
    this._install(fresh, why);
    this._broadcast({ type: "session" });
    return fresh;
  }

  // -- internals: state changes ----------------------------------------------------------------

  /** A session we obtained (refresh or sign-in) becomes current. */
  _install(session, why = null) {
    const previous = this.state;
    const previousUser = this.session?.user?.id ?? null;
    this.session = session;
    this.state = "active";
    this._retryAt = 0;
    this._failures = 0;
    if (previous === "needs_reauth") this._leaveNeedsReauth(previousUser === null || previousUser === (session.user?.id ?? null));
    else if (previous === "signed_out") this._emit(SIGNED_IN, {});
    else this._emit(TOKEN_REFRESHED, { why });
    this._debug("session updated", { why, seconds_left: Math.round(this._secondsLeft(session)) });
    this._schedule();
  }

  /** A session another tab (or supabase-js itself) obtained becomes current here. */
  _adopt(session) {
    if (this.session && credentialOf(this.session) === credentialOf(session)) return;
    this.stats.adopted += 1;
    this._install(session, "adopted");
  }

  _enterNeedsReauth(reason) {
    if (this.state === "needs_reauth") return;
    this.state = "needs_reauth";
    let resolve;
    const promise = new Promise((r) => {
      resolve = r;
    });
    this._reauth = { promise, resolve };
    this._warn("session ended; re-authentication needed", { reason });
    this._emit(NEEDS_REAUTH, { reason });
  }

  /** Queued requests replay only for the same user: someone else signing in at the banner
   * must not have the previous user's pending requests sent in their name. */
  _leaveNeedsReauth(sameUser) {
    const reauth = this._reauth;
    this._reauth = null;
    this._recovered = null;
    this._emit(REAUTHENTICATED, { sameUser });
    reauth?.resolve(sameUser ? "ok" : "user_changed");
  }

  async _waitForReauth() {
    const reauth = this._reauth;
    if (!reauth) return;
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.reauthWait);
    });
    const outcome = await Promise.race([reauth.promise, timeout]);
    clearTimeout(timer);
    if (outcome !== "ok" || this.state !== "active") {
      const why = { timeout: "re-authentication did not happen in time", user_changed: "another user signed in; the request was not replayed", signed_out: "signed out" }[outcome];
      throw new AuthExpiredError(why || "the session has ended", { reason: outcome === "ok" ? "signed_out" : outcome });
    }
  }

  _signedOut(why) {
    this._epoch += 1;
    const wasSignedIn = this.state !== "signed_out";
    this.session = null;
    this.state = "signed_out";
    this._recovered = null;
    clearTimeout(this._timer);
    const reauth = this._reauth;
    this._reauth = null;
    reauth?.resolve("signed_out");
    if (wasSignedIn) this._emit(SIGNED_OUT, { why });
  }

  // -- internals: other tabs ----------------------------------------------------------------

  _broadcast(message) {
    try {
      this._channel?.postMessage(message);
    } catch {
      /* a closed channel: the storage event still tells other tabs */
    }
  }

  _onMessage(message) {
    if (!message || typeof message !== "object") return;
    if (message.type === "signed_out") this._signedOut("signed out in another tab");
    else if (message.type === "session") this._syncFromStorage();
    else if (message.type === "refused") this._refusedElsewhere(message);
  }

  /** Another tab's refresh of our very refresh token was refused for good: same verdict here. */
  async _refusedElsewhere({ refresh, code }) {
    const session = this.session;
    if (this.state !== "active" || !session || !grantOf(session)) return;
    if ((await fingerprint(grantOf(session))) !== refresh || this.session !== session) return;
    this._enterNeedsReauth(`${code || "refresh refused"} (in another tab)`);
  }

  async _syncFromStorage() {
    // A source that reports its own changes (supabase-js, whose BroadcastChannel carries other
    // tabs' refreshes and sign-outs) is not re-read here: its load can refresh (getSession within
    // 90 s of expiry), and that refresh's storage write would wake the other tabs in turn.
    if (this.tokens.subscribe) return;
    const stored = await this.tokens.load();
    if (stored === undefined) return; // unreadable: change nothing
    if (stored === null) {
      if (this.session) this._signedOut("signed out in another tab");
      return;
    }
    this._adopt(stored);
  }

  _onTokensEvent(event, session) {
    if (event === "SIGNED_OUT") this._signedOut("signed out by the auth library");
    else if (session && (event === "TOKEN_REFRESHED" || event === "SIGNED_IN")) this._adopt(session);
  }

  // -- internals: proactive refresh ----------------------------------------------------------

  _visible() {
    return !globalThis.document || globalThis.document.visibilityState !== "hidden";
  }

  /** Arm one timer for when the session becomes due (re-armed after every change). */
  _schedule() {
    clearTimeout(this._timer);
    if (!this._autoRefresh || this._closed || this.state !== "active" || !this.session) return;
    const session = this.session;
    const dueIn = (this._secondsLeft(session) - Math.min(this.margin, session.expires_in / 2)) * 1000;
    const waitMs = Math.max(Math.min(dueIn, this.maxTimerDelay), 250, this._retryAt - this._now());
    this._timer = setTimeout(() => this._tick(), waitMs);
  }

  /** Timer, wake-up, focus, back online: refresh now if due (visible tabs only). */
  _tick() {
    if (this._closed) return;
    if (this.state === "active" && this.session && this._visible() && this._due(this.session) && this._now() >= this._retryAt) {
      this._refresh(null, "proactive")
        .catch(() => undefined)
        .finally(() => this._schedule());
      return;
    }
    this._schedule();
  }

  _emit(event, detail) {
    for (const listener of [...this._listeners]) {
      try {
        listener(event, detail);
      } catch (error) {
        this._warn("session listener failed", { event, error: String(error) });
      }
    }
  }

  _debug(message, fields) {
    this._log?.debug?.(`[sessionkeeper] ${message}`, fields);
  }

  _warn(message, fields) {
    this._log?.warn?.(`[sessionkeeper] ${message}`, fields);
  }
}

function dispositionFilename(header) {
  if (!header) return null;
  const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      /* fall through */
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(header);
  return plain ? plain[1].trim() : null;
}

// ---------------------------------------------------------------------------------------------
// <session-expired-banner>
// ---------------------------------------------------------------------------------------------

const BannerBase = globalThis.HTMLElement ?? class {};

const BANNER_STYLE = `
:host { position: fixed; left: 50%; top: 12px; transform: translateX(-50%); z-index: 2147483000;
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
:host([hidden]), [hidden] { display: none !important; }
.bar { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; padding: 8px 12px;
  background: #fff8e6; color: #5c3c00; border: 1px solid #f0c36d; border-radius: 8px;
  box-shadow: 0 4px 16px rgba(0,0,0,.12); max-width: min(94vw, 760px); }
button { font: inherit; cursor: pointer; border-radius: 6px; padding: 4px 10px; }
.link { border: 0; background: none; color: #8a5a00; text-decoration: underline; padding: 0; }
.primary { border: 1px solid #b7791f; background: #b7791f; color: #fff; }
.ghost { border: 1px solid #d9b770; background: transparent; color: #5c3c00; }
form { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
input { font: inherit; padding: 4px 8px; border: 1px solid #d9b770; border-radius: 6px; width: 12em; }
.error { color: #a61b1b; width: 100%; }
`;

/**
 * "Session expired — click to reconnect": shown only while the client needs re-authentication.
 * It re-authenticates inline (a small email + password form in the bar) or through
 * `banner.reauthenticate = async (client) => {...}` (a popup, say). It never navigates and never
 * clears the page: requests queued while it shows replay after reconnecting.
 */
export class SessionExpiredBanner extends BannerBase {
  constructor() {
    super();
    this._client = null;
    this._off = null;
    this.reauthenticate = null;
    this._onClient = (event) => {
      if (!this._client) this.client = event.detail;
    };
  }

  connectedCallback() {
    if (!this.shadowRoot) this._render();
    this.hidden = true;
    if (!this._client && getDefaultClient()) this.client = getDefaultClient();
    globalThis.addEventListener?.("sessionkeeper:client", this._onClient);
  }

  disconnectedCallback() {
    globalThis.removeEventListener?.("sessionkeeper:client", this._onClient);
  }

  get client() {
    return this._client;
  }

  set client(client) {
    this._off?.();
    this._client = client;
    this._off = client.on((event) => {
      if (event === NEEDS_REAUTH) this.show();
      else if (event === REAUTHENTICATED || event === SIGNED_OUT || event === SIGNED_IN) this.hide();
    });
    if (client.state === "needs_reauth") this.show();
  }

  show() {
    if (!this.shadowRoot) this._render();
    if (this.hidden) this._returnFocus = globalThis.document?.activeElement ?? null;
    this._form.hidden = true;
    this._prompt.hidden = false;
    this._error.textContent = "";
    this.hidden = false;
  }

  hide() {
    const hadFocus = this.shadowRoot?.activeElement != null;
    this.hidden = true;
    if (this._password) this._password.value = "";
    // Keyboard users land where they were before the banner, not on <body>.
    if (hadFocus && this._returnFocus?.isConnected) this._returnFocus.focus();
  }

  _closeForm() {
    this._form.hidden = true;
    this._prompt.hidden = false;
    this._link.focus();
  }

  _render() {
    const root = this.attachShadow({ mode: "open" });
    // A constructed stylesheet passes a strict Content-Security-Policy (no 'unsafe-inline').
    let inline = "";
    if (globalThis.CSSStyleSheet && "adoptedStyleSheets" in root) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(BANNER_STYLE);
      root.adoptedStyleSheets = [sheet];
    } else inline = `<style>${BANNER_STYLE}</style>`;
    root.innerHTML = `${inline}
      <div class="bar" role="status" aria-live="polite" part="bar">
        <span class="prompt"><span>Session expired —</span>
          <button type="button" class="link" part="reconnect">click to reconnect</button></span>
        <form hidden autocomplete="on">
          <span>Reconnect as</span>
          <input name="email" type="email" autocomplete="username" required aria-label="Email">
          <input name="password" type="password" autocomplete="current-password" required aria-label="Password" placeholder="Password">
          <button type="submit" class="primary">Reconnect</button>
          <button type="button" class="ghost cancel">Not now</button>
        </form>
        <span class="error" role="alert"></span>
      </div>`;
    this._prompt = root.querySelector(".prompt");
    this._form = root.querySelector("form");
    this._email = root.querySelector('input[name="email"]');
    this._password = root.querySelector('input[name="password"]');
    this._error = root.querySelector(".error");
    this._link = root.querySelector(".link");
    this._link.addEventListener("click", () => this._reconnect());
    root.querySelector(".cancel").addEventListener("click", () => this._closeForm());
    this._form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this._closeForm();
    });
    this._form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const submit = this._form.querySelector('button[type="submit"]');
      submit.disabled = true;
      this._error.textContent = "";
      try {
        await this._client.signIn({ email: this._email.value, password: this._password.value });
      } catch (error) {
        this._error.textContent = !(error instanceof IssuerError)
          ? "Could not reach the server; try again."
          : error.code === "invalid_credentials"
            ? "Wrong email or password."
            : `Could not sign in (${error.code}).`;
      } finally {
        submit.disabled = false;
      }
    });
  }

  async _reconnect() {
    if (this.reauthenticate) {
      try {
        await this.reauthenticate(this._client);
      } catch (error) {
        this._error.textContent = String(error.message || error);
      }
      return;
    }
    this._prompt.hidden = true;
    this._form.hidden = false;
    this._email.value = this._client?.user?.email || this._email.value;
    (this._email.value ? this._password : this._email).focus();
  }
}

if (globalThis.customElements && !globalThis.customElements.get("session-expired-banner")) {
  globalThis.customElements.define("session-expired-banner", SessionExpiredBanner);
}
