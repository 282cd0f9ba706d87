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
  const expiresIn = Number(body.expires_in);
  const lifetime = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 3600;
  const receivedAt = Number.isFinite(Number(body.received_at)) ? Number(body.received_at) : nowMs / 1000;
  const expiresAt = Number.isFinite(Number(body.expires_at_local))
    ? Number(body.expires_at_local)
    : receivedAt + lifetime;
  return {
    access_token: body.access_token,
    refresh_token: typeof body.refresh_token === "string" && body.refresh_token ? body.refresh_token : null,
    token_type: body.token_type || "bearer",
    expires_in: lifetime,
    received_at: receivedAt,
    expires_at_local: expiresAt,
    user: body.user && typeof body.user === "object" ? body.user : null,
  };
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
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

  async function call(method, path, { body, token, what } = {}) {
    let response;
    try {
      response = await fetchImpl(`${base}${path}`, {
        method,
        headers: token ? { ...headers, Authorization: `Bearer ${token}` } : headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeout),
        credentials: "omit",
        cache: "no-store",
      });
    } catch (error) {
      throw new IssuerUnavailableError(`${what}: ${error && error.name === "TimeoutError" ? "timed out" : "network error"}`);
    }
    if (!response.ok) throw await issuerFailure(response, what);
    return response;
  }

  async function sessionFrom(response, what) {
    const session = normalizeSession(await readJson(response), now());
    if (!session) throw new IssuerUnavailableError(`${what}: the answer held no session`);
    return session;
  }

  let unsaved = false; // the last save failed: an empty entry is then not a sign-out elsewhere

  return {
    kind: "sessionkeeper",
    storageKey,
    /** The stored session, or null. An unreadable entry is left alone (never taken as sign-out). */
    async load() {
      let raw;
      try {
        raw = storage.getItem(storageKey);
      } catch {
        return undefined; // storage unreadable: "unknown", not "signed out"
      }
      if (raw === null || raw === undefined) return unsaved ? undefined : null;
      try {
        return normalizeSession(JSON.parse(raw), now()) || undefined;
      } catch {
        return undefined;
      }
    },
    async save(session) {
      try {
        storage.setItem(storageKey, JSON.stringify(session));
        unsaved = false;
      } catch {
        // Full or blocked storage: the session stays in memory; other tabs learn it by message.
        unsaved = true;
      }
    },
    async clear() {
      unsaved = false;
      try {
        storage.removeItem(storageKey);
      } catch {
        /* nothing to clear */
      }
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
 *   tokens       createAuthClient(...) or supabaseTokens(supabaseClient)
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
  } = {}) {
    if (!tokens) throw new TypeError("createApiClient: `tokens` is required (createAuthClient() or supabaseTokens(client))");
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
    const sent = session.access_token;
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
    headers.set("Authorization", `Bearer ${session.access_token}`);
    return this._fetch(url, { ...init, headers });
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
    if (this.state === "active" && this.session && this.session.access_token !== sent) {
      return this.session; // someone refreshed while this request was out
    }
    if (this._recovered === sent) {
      this._enterNeedsReauth("the API refused the token a 401-recovery produced");
    }
    if (this.state === "needs_reauth") return this._validSession();
    try {
      const fresh = await this._refresh(sent, "401");
      this._recovered = fresh.access_token;
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
    if (base && base.access_token !== failedToken && !this._due(base)) {
      this._adopt(base);
      return base;
    }
    if (!base) throw new AuthExpiredError("not signed in", { reason: "signed_out" });
    if (this.state === "needs_reauth") {
      // Another tab's refresh of this session was refused for good while we waited for the lock:
      // spending the same refresh token again can only be refused too.
      throw new AuthExpiredError("the session has ended (refused in another tab)", { reason: "needs_reauth" });
    }
    if (!base.refresh_token) {
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
      if (again && again.refresh_token !== base.refresh_token && !this._expired(again)) {
        this._adopt(again);
        return again;
      }
      this._enterNeedsReauth(error.code || "refresh refused");
      // The other tabs hold the same refresh token: tell them (by fingerprint) so they show the
      // banner now instead of each spending a refused refresh at its next call.
      // (Sent when the fingerprint is ready; nothing is awaited between the verdict and the throw,
      // so the callers see the state the verdict left.)
      fingerprint(base.refresh_token).then((refresh) => this._broadcast({ type: "refused", refresh, code: error.code }));
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
    if (this.session && this.session.access_token === session.access_token) return;
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
    if (this.state !== "active" || !session?.refresh_token) return;
    if ((await fingerprint(session.refresh_token)) !== refresh || this.session !== session) return;
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
