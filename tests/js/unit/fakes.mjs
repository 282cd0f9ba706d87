// Fakes for unit tests of src/sessionkeeper/web/sessionkeeper.js under `node --test`: a
// controllable clock, in-memory localStorage, a Web Locks LockManager, a GoTrue-like auth server
// and a protected API (both as `fetch` functions), a small supabase-js stand-in, a recording
// logger, and `createWorld(t)`, which wires them into api clients ("tabs") and tears them down.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { inspect } from "node:util";

import { cookieSession, createApiClient, createAuthClient, normalizeSession } from "../../../src/sessionkeeper/web/sessionkeeper.js";

export const AUTH_URL = "https://auth.test/auth/v1";
export const API_URL = "https://app.test/api";
export const BRIDGE_URL = "https://app.test/auth";
export const USERS = {
  "ann@example.com": { id: "user-ann", password: "ann-password" },
  "bob@example.com": { id: "user-bob", password: "bob-password" },
};
export const ANN = { email: "ann@example.com", password: USERS["ann@example.com"].password };
export const BOB = { email: "bob@example.com", password: USERS["bob@example.com"].password };

const tick = () => new Promise((resolve) => setImmediate(resolve));
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `predicate` until it is truthy (BroadcastChannel delivery is asynchronous). */
export async function until(predicate, { timeout = 2000, what = "condition" } = {}) {
  const end = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Lets pending promises, I/O callbacks and short timers run. */
export async function settle(ms = 5) {
  await tick();
  await sleep(ms);
  await tick();
}

/** Which of `promise`'s outcomes has happened yet (without awaiting it). */
export function track(promise) {
  const state = { settled: false, value: undefined, error: undefined };
  state.promise = promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error) => Object.assign(state, { settled: true, error }),
  );
  return state;
}

// -- clock --------------------------------------------------------------------------------------

/** A clock that stands still until told to move: expiry never depends on real sleeping. */
export function createClock(start = Date.UTC(2026, 0, 5, 9, 0, 0)) {
  let ms = start;
  return {
    now: () => ms,
    advance(delta) {
      ms += delta;
    },
  };
}

// -- localStorage -------------------------------------------------------------------------------

export function createStorage() {
  const data = new Map();
  const storage = {
    data,
    readsThrow: false,
    writesThrow: false,
    getItem(key) {
      if (storage.readsThrow) throw new DOMException("The operation is insecure.", "SecurityError");
      return data.has(key) ? data.get(key) : null;
    },
    setItem(key, value) {
      if (storage.writesThrow) throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
      data.set(key, String(value));
    },
    removeItem(key) {
      if (storage.writesThrow) throw new DOMException("The quota has been exceeded.", "QuotaExceededError");
      data.delete(key);
    },
  };
  return storage;
}

// -- Web Locks ----------------------------------------------------------------------------------

const abortError = () => new DOMException("The request was aborted.", "AbortError");

/**
 * `navigator.locks` with exclusive locks only: `request(name, {signal}, callback)`. Aborting while
 * waiting rejects with an AbortError; aborting after the grant does nothing. `grantDelay` (ms)
 * hands the lock over a few milliseconds after release, as a browser's lock IPC may.
 */
export function createLockManager({ grantDelay = 0 } = {}) {
  const states = new Map();
  const stateOf = (name) => {
    if (!states.has(name)) states.set(name, { held: false, handing: false, queue: [] });
    return states.get(name);
  };
  const pump = (state) => {
    if (state.held || state.handing) return;
    const waiter = state.queue.shift();
    if (!waiter) return;
    if (!grantDelay) return waiter.grant();
    state.handing = true;
    setTimeout(() => {
      state.handing = false;
      waiter.grant();
    }, grantDelay);
  };
  const manager = {
    grants: 0,
    aborted: 0,
    held: (name) => stateOf(name).held,
    request(name, options, callback) {
      if (typeof options === "function") [options, callback] = [{}, options];
      const signal = options?.signal;
      if (signal?.aborted) return Promise.reject(abortError());
      const state = stateOf(name);
      return new Promise((resolve, reject) => {
        let done = false;
        const onAbort = () => {
          if (done) return;
          done = true;
          manager.aborted += 1;
          state.queue = state.queue.filter((w) => w !== waiter);
          reject(abortError());
        };
        const waiter = {
          grant() {
            signal?.removeEventListener("abort", onAbort);
            if (done) return pump(state); // aborted during a delayed hand-over
            done = true;
            state.held = true;
            manager.grants += 1;
            Promise.resolve()
              .then(() => callback({ name, mode: "exclusive" }))
              .finally(() => {
                state.held = false;
                pump(state);
              })
              .then(resolve, reject);
          },
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        state.queue.push(waiter);
        pump(state);
      });
    },
    /** A frozen tab: takes the lock and never lets go. */
    holdForever(name) {
      manager.request(name, () => new Promise(() => {}));
    },
  };
  return manager;
}

// -- tokens and logs ----------------------------------------------------------------------------

/** Every token a fake server handed out in this process: what must never reach a log. */
export const ISSUED = new Set();
/** Every call made to a logger from `recordingLogger()` in this process. */
export const LOGS = [];

function newToken(kind) {
  const token = `${kind}-${randomBytes(12).toString("hex")}`;
  ISSUED.add(token);
  return token;
}

export function recordingLogger() {
  const record = (level) => (...args) => LOGS.push({ level, args });
  return { debug: record("debug"), info: record("info"), log: record("log"), warn: record("warn"), error: record("error") };
}

/** Log entries that hold any of `tokens` anywhere in their arguments. */
export function tokenLeaks(entries = LOGS, tokens = ISSUED) {
  const leaks = [];
  for (const entry of entries) {
    const text = entry.args.map((arg) => (typeof arg === "string" ? arg : inspect(arg, { depth: 20, showHidden: true }))).join(" ");
    for (const token of tokens) if (text.includes(token)) leaks.push({ level: entry.level, text, token });
  }
  return leaks;
}

export const warnings = (pattern) => LOGS.filter((e) => e.level === "warn" && pattern.test(String(e.args[0])));

/** Registers, last in a file, the check that nothing the file's tests logged holds a token. */
export function noTokenInLogs() {
  test("logs never contain an access or refresh token", () => {
    assert.ok(LOGS.length > 0, "the tests above logged nothing, so nothing was checked");
    assert.ok(ISSUED.size > 0);
    assert.deepEqual(tokenLeaks(), []);
  });
}

// -- the auth server ----------------------------------------------------------------------------

const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

const FAILURES = {
  500: () => json(500, { code: 500, error_code: "unexpected_failure", msg: "database unavailable" }),
  network: () => {
    throw new TypeError("fetch failed");
  },
  html404: () => new Response("<html><body><h1>404 Not Found</h1>nginx</body></html>", { status: 404, headers: { "Content-Type": "text/html" } }),
  not_found: () => json(400, { code: 400, error_code: "refresh_token_not_found", msg: "Invalid Refresh Token: Refresh Token Not Found" }),
};

/**
 * A GoTrue-like `/auth/v1` as a fetch function: password grant, refresh grant (rotating, each
 * refresh token usable once), /logout. `failRefresh(kind, times)` makes the next `times` refreshes
 * (default: all) answer `500`, `network`, `html404` or `not_found`. `beforeRefresh` runs before a
 * refresh is answered (to race another tab against it). `logoutDown`: /logout is unreachable.
 */
export function createAuthServer({ clock, lifetime = 3600 } = {}) {
  const refreshTokens = new Map(); // refresh token -> { sessionId, user, used }
  const accessTokens = new Map(); // access token -> { sessionId, user, exp }
  const ended = new Set(); // session ids signed out
  let nextSession = 1;
  let failure = null;
  const server = {
    lifetime,
    refreshes: 0,
    signIns: 0,
    logouts: [],
    logoutDown: false,
    beforeRefresh: null,
    failRefresh(kind, times = Infinity) {
      failure = { kind, times };
    },
    heal() {
      failure = null;
    },
    /** A new session for `email`, as the token endpoint's JSON body. */
    issue(email, { sessionId = nextSession++, ttl = server.lifetime } = {}) {
      const user = { id: USERS[email].id, email };
      const access = newToken("at");
      const refresh = newToken("rt");
      const exp = Math.floor(clock.now() / 1000) + ttl;
      accessTokens.set(access, { sessionId, user, exp });
      refreshTokens.set(refresh, { sessionId, user, used: false });
      return { access_token: access, refresh_token: refresh, token_type: "bearer", expires_in: ttl, expires_at: exp, user };
    },
    /** Rotates `refreshToken` as a refresh request would; returns [status, body]. */
    rotate(refreshToken) {
      const entry = refreshTokens.get(refreshToken);
      if (!entry || ended.has(entry.sessionId)) {
        return [400, { code: 400, error_code: "refresh_token_not_found", msg: "Invalid Refresh Token: Refresh Token Not Found" }];
      }
      if (entry.used) return [400, { code: 400, error_code: "refresh_token_already_used", msg: "Invalid Refresh Token: Already Used" }];
      entry.used = true;
      return [200, server.issue(entry.user.email, { sessionId: entry.sessionId })];
    },
    /** An access token's expiry (epoch seconds), or null. */
    expOf: (token) => accessTokens.get(token)?.exp ?? null,
    /** The user an access token stands for, if it is live at the server's clock. */
    userOf(token) {
      const entry = accessTokens.get(token);
      if (!entry || ended.has(entry.sessionId) || entry.exp <= clock.now() / 1000) return null;
      return entry.user;
    },
    async fetch(input, init = {}) {
      const url = new URL(String(input));
      await tick();
      const body = init.body ? JSON.parse(init.body) : {};
      if (url.pathname.endsWith("/token") && url.searchParams.get("grant_type") === "refresh_token") {
        server.refreshes += 1;
        if (server.beforeRefresh) await server.beforeRefresh(body.refresh_token);
        if (failure && failure.times > 0) {
          failure.times -= 1;
          return FAILURES[failure.kind]();
        }
        const [status, answer] = server.rotate(body.refresh_token);
        return json(status, answer);
      }
      if (url.pathname.endsWith("/token") && url.searchParams.get("grant_type") === "password") {
        server.signIns += 1;
        const user = USERS[body.email];
        if (!user || user.password !== body.password) {
          return json(400, { code: 400, error_code: "invalid_credentials", msg: "Invalid login credentials" });
        }
        return json(200, server.issue(body.email));
      }
      if (url.pathname.endsWith("/user")) {
        server.userCalls = (server.userCalls ?? 0) + 1;
        const token = new Headers(init.headers).get("Authorization")?.replace(/^Bearer /, "");
        const user = server.userOf(token);
        return user ? json(200, user) : json(403, { code: 403, error_code: "bad_jwt", msg: "invalid JWT" });
      }
      if (url.pathname.endsWith("/logout")) {
        const token = new Headers(init.headers).get("Authorization")?.replace(/^Bearer /, "");
        server.logouts.push({ token, scope: url.searchParams.get("scope") });
        if (server.logoutDown) throw new TypeError("fetch failed");
        const entry = accessTokens.get(token);
        if (!entry) return json(401, { code: 401, error_code: "bad_jwt", msg: "invalid JWT" });
        ended.add(entry.sessionId);
        return new Response(null, { status: 204 });
      }
      return json(404, { code: 404, error_code: "not_found", msg: "no such endpoint" });
    },
  };
  return server;
}

// -- the protected API --------------------------------------------------------------------------

/**
 * `/api/...` as a fetch function: 200 when the bearer token is live at the auth server's clock,
 * else 401. Records every send (`sends`: id from X-Request-Id, method, token, body). `refuse(token)`
 * revokes one access token at the API only; `refuseAll` answers 401 to everything.
 */
export function createApi({ auth }) {
  const refused = new Set();
  const api = {
    sends: [],
    slow: new Map(), // request id -> ms the API takes to answer it
    refuseAll: false,
    refuse(token) {
      refused.add(token);
    },
    attempts: (id) => api.sends.filter((send) => send.id === id),
    saw: (token) => api.sends.some((send) => send.token === token),
    async fetch(input, init = {}) {
      const url = new URL(String(input));
      const headers = new Headers(init.headers);
      const token = headers.get("Authorization")?.replace(/^Bearer /, "") ?? null;
      const send = { id: headers.get("X-Request-Id"), path: url.pathname, method: init.method || "GET", token, body: init.body };
      api.sends.push(send);
      await (api.slow.has(send.id) ? sleep(api.slow.get(send.id)) : tick());
      const user = token && !refused.has(token) && !api.refuseAll ? auth.userOf(token) : null;
      if (!user) return json(401, { error: "invalid_token" }, { "WWW-Authenticate": 'Bearer error="invalid_token"' });
      if (url.pathname === "/api/export.csv") {
        return new Response("id,name\n1,Ann\n", {
          headers: { "Content-Type": "text/csv", "Content-Disposition": 'attachment; filename="contacts.csv"' },
        });
      }
      if (url.pathname === "/api/report") {
        return new Response("%PDF-1.7", {
          headers: { "Content-Type": "application/pdf", "Content-Disposition": "attachment; filename=\"fallback.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" },
        });
      }
      if (url.pathname === "/api/missing") return json(404, { error: "no such report" });
      return json(200, { path: url.pathname, user: user.id, method: send.method });
    },
  };
  return api;
}

// -- the session bridge and a cookie-reading API (cookie mode) -----------------------------------

/**
 * The server side of cookie mode as one fetch function over a browser-wide cookie jar (`jar`:
 * the access and refresh token the HttpOnly cookies hold): the bridge (`/auth/callback`,
 * `/auth/refresh`, `/auth/session`), the issuer's `/auth/v1` (passed to `auth`), and `/api/...`
 * guarded by the access cookie. The guard refreshes by itself an access cookie that has expired
 * or has less than `nearExpiry` s left, and then (if `expiresHeader`) says until when in
 * X-Session-Expires-At. Unsafe methods need X-SessionKeeper-CSRF: 1. Every call is recorded in
 * `calls` (path, method, headers, credentials, body); API calls also in `sends`.
 * `failRefresh(kind, times)`: `/auth/refresh` answers 503 or fails (network) `times` times.
 */
export function createBridge({ auth, clock }) {
  const jar = { access: null, refresh: null };
  let failure = null;
  const refused = new Set();
  const nowS = () => clock.now() / 1000;
  const answer = (user, token) => ({ user: { id: user.id, email: user.email }, expires_in: Math.round(auth.expOf(token) - nowS()), expires_at: auth.expOf(token) });
  const unauthorized = (code) => json(401, { error: "Unauthorized", error_code: code });
  /** The server-side refresh with the refresh cookie: [status, body]. */
  const refreshJar = () => {
    if (!jar.refresh) return [401, { error: "Unauthorized", error_code: "no_session" }];
    const [status, body] = auth.rotate(jar.refresh);
    if (status !== 200) return [401, { error: "Unauthorized", error_code: body.error_code }];
    bridge.serverRefreshes += 1;
    Object.assign(jar, { access: body.access_token, refresh: body.refresh_token });
    return [200, answer(body.user, body.access_token)];
  };
  const bridge = {
    jar,
    calls: [],
    sends: [],
    refreshes: 0, // POST /auth/refresh answered
    serverRefreshes: 0, // refreshes the server made (any route)
    nearExpiry: 30,
    expiresHeader: true, // false: never; "always": on every answer, refreshed or not
    refuseAll: false,
    slow: new Map(),
    failRefresh(kind, times = Infinity) {
      failure = { kind, times };
    },
    heal() {
      failure = null;
    },
    /** The API refuses this access token (as if revoked there); the refresh cookie still works. */
    refuse(token) {
      refused.add(token);
    },
    /** A sign-in that happened outside the page (the hosted sign-in): the cookies are set. */
    signInOutside(email = ANN.email) {
      const session = auth.issue(email);
      Object.assign(jar, { access: session.access_token, refresh: session.refresh_token });
      return session;
    },
    /** The session ends at the issuer (a global sign-out elsewhere); the cookies stay. */
    async endSession() {
      await auth.fetch(`${AUTH_URL}/logout?scope=global`, { method: "POST", headers: { Authorization: `Bearer ${jar.access}` } });
    },
    attempts: (id) => bridge.sends.filter((send) => send.id === id),
    callsTo: (path, method) => bridge.calls.filter((c) => c.path === path && (!method || c.method === method)),
    async fetch(input, init = {}) {
      const url = new URL(String(input));
      if (url.pathname.startsWith("/auth/v1/")) return auth.fetch(input, init);
      const headers = new Headers(init.headers);
      const method = init.method || "GET";
      const cookies = init.credentials !== "omit"; // same-origin or include: the jar goes along
      const call = { path: url.pathname, method, headers, credentials: init.credentials, body: init.body ? JSON.parse(init.body) : undefined };
      if (!url.pathname.startsWith("/api/")) bridge.calls.push(call);
      await tick();
      if (url.pathname === "/auth/callback" && method === "POST") {
        const { event, session, scope = "local" } = call.body ?? {};
        if (event === "SIGNED_OUT") {
          if (cookies && jar.access) await auth.fetch(`${AUTH_URL}/logout?scope=${scope}`, { method: "POST", headers: { Authorization: `Bearer ${jar.access}` } });
          Object.assign(jar, { access: null, refresh: null });
          return json(200, { event, user: null, expires_in: null, expires_at: null });
        }
        if (event !== "SIGNED_IN" && event !== "TOKEN_REFRESHED") return json(400, { error: "invalid_request", error_code: "bad_event" });
        if (!session?.access_token || !session.refresh_token) return json(400, { error: "invalid_request", error_code: "missing_tokens" });
        const user = auth.userOf(session.access_token);
        if (!user) return unauthorized("invalid_session");
        Object.assign(jar, { access: session.access_token, refresh: session.refresh_token });
        return json(200, { event, ...answer(user, session.access_token) });
      }
      if (url.pathname === "/auth/refresh" && method === "POST") {
        if (headers.get("X-SessionKeeper-CSRF") !== "1") return json(403, { error: "Forbidden" });
        bridge.refreshes += 1;
        if (failure && failure.times > 0) {
          failure.times -= 1;
          if (failure.kind === "network") throw new TypeError("fetch failed");
          return json(503, { error: "issuer_unavailable" }, { "Retry-After": "1" });
        }
        const [status, body] = cookies ? refreshJar() : [401, { error: "Unauthorized", error_code: "no_session" }];
        return json(status, body);
      }
      if (url.pathname === "/auth/session" && method === "GET") {
        const user = cookies && auth.userOf(jar.access);
        if (user) return json(200, answer(user, jar.access));
        const [status, body] = cookies ? refreshJar() : [401, { error: "Unauthorized", error_code: "no_session" }];
        return json(status, body);
      }
      if (url.pathname.startsWith("/api/")) {
        const send = { id: headers.get("X-Request-Id"), path: url.pathname, method, authorization: headers.get("Authorization"), csrf: headers.get("X-SessionKeeper-CSRF"), credentials: init.credentials, access: cookies ? jar.access : null, body: init.body };
        bridge.sends.push(send);
        await (bridge.slow.has(send.id) ? sleep(bridge.slow.get(send.id)) : tick());
        if (!["GET", "HEAD", "OPTIONS"].includes(method) && send.csrf !== "1") return json(403, { error: "Forbidden" });
        if (!send.access || refused.has(send.access) || bridge.refuseAll) return unauthorized();
        const extra = {};
        const exp = auth.expOf(jar.access);
        if (exp !== null && exp - nowS() < bridge.nearExpiry) {
          const [status] = refreshJar();
          if (status !== 200) return unauthorized();
          if (bridge.expiresHeader) extra["X-Session-Expires-At"] = String(auth.expOf(jar.access));
        }
        if (bridge.expiresHeader === "always") extra["X-Session-Expires-At"] = String(auth.expOf(jar.access));
        const user = auth.userOf(jar.access);
        if (!user) return unauthorized();
        return json(200, { path: url.pathname, user: user.id, method }, extra);
      }
      return json(404, { error: "not_found" });
    },
  };
  return bridge;
}

// -- supabase-js stand-in -----------------------------------------------------------------------

/** An AuthError the way supabase-js shapes one. */
export function supabaseError(name, { status, code, message = name } = {}) {
  return Object.assign(new Error(message), { name, status, code, __isAuthError: true });
}

/**
 * The part of a supabase-js client `supabaseTokens` uses, behaving as supabase-js 2.119 does where
 * it matters: `getSession` refreshes a session within 90 s of expiry itself (counted in
 * `getSessionRefreshes`); `refreshSession` notifies TOKEN_REFRESHED before it returns; a refusal (not a
 * retryable fetch error) of an expired session removes it and notifies SIGNED_OUT; `signOut`
 * forgets the session (a "global" one only once the server was told) and notifies SIGNED_OUT. `refreshErrors` queues errors the next refreshes return instead.
 */
export function createFakeSupabase({ server, now, storageKey }) {
  let session = null;
  const listeners = new Set();
  const notify = (event, value) => {
    for (const listener of [...listeners]) listener(event, value);
  };
  const withExpiry = (body) => ({ ...body, expires_at: Math.round(now() / 1000) + body.expires_in });
  // The refresh both getSession and refreshSession run (supabase-js's _callRefreshToken).
  const refresh = async (refreshToken) => {
    await tick();
    let error = fake.refreshErrors.shift();
    if (!error) {
      server.refreshes += 1;
      const [status, body] = server.rotate(refreshToken);
      if (status === 200) {
        session = withExpiry(body);
        notify("TOKEN_REFRESHED", session);
        return { data: { session, user: session.user }, error: null };
      }
      error = supabaseError("AuthApiError", { status, code: body.error_code, message: body.msg });
    }
    if (error.name !== "AuthRetryableFetchError" && session && session.expires_at * 1000 <= now()) {
      session = null;
      notify("SIGNED_OUT", null);
    }
    return { data: { session: null, user: null }, error };
  };
  const fake = {
    refreshErrors: [],
    refreshCalls: 0,
    getSessionRefreshes: 0,
    notify,
    get session() {
      return session;
    },
    set session(value) {
      session = value && withExpiry(value);
    },
    auth: {
      storageKey,
      async getSession() {
        // 2.119: a session within 90 s of expiry is refreshed by getSession itself; if that
        // refresh fails but the access token is still valid, the stored session is returned.
        if (!session || session.expires_at * 1000 - now() >= 90_000) return { data: { session }, error: null };
        fake.getSessionRefreshes += 1;
        const { data, error } = await refresh(session.refresh_token);
        if (!error) return { data: { session: data.session }, error: null };
        if (session && session.expires_at * 1000 > now()) return { data: { session }, error: null };
        return { data: { session: null }, error };
      },
      async refreshSession({ refresh_token: refreshToken }) {
        fake.refreshCalls += 1;
        return refresh(refreshToken);
      },
      async signInWithPassword({ email, password }) {
        await tick();
        const user = USERS[email];
        if (!user || user.password !== password) {
          return { data: { session: null, user: null }, error: supabaseError("AuthApiError", { status: 400, code: "invalid_credentials" }) };
        }
        session = withExpiry(server.issue(email));
        notify("SIGNED_IN", session);
        return { data: { session, user: session.user }, error: null };
      },
      async signOut({ scope = "global" } = {}) {
        await tick();
        const token = session?.access_token;
        const forget = () => {
          session = null;
          notify("SIGNED_OUT", null);
        };
        if (scope === "local") forget(); // before the request, as 2.119 does
        if (token) {
          server.logouts.push({ token, scope });
          if (server.logoutDown) return { error: supabaseError("AuthRetryableFetchError", { status: 0 }) };
        }
        if (scope === "global") forget(); // only once the server was told
        return { error: null };
      },
      onAuthStateChange(callback) {
        listeners.add(callback);
        return { data: { subscription: { unsubscribe: () => listeners.delete(callback) } } };
      },
    },
  };
  return fake;
}

// -- the world: server, API, storage, locks, and tabs ----------------------------------------

let worlds = 0;

/**
 * Everything a test needs, torn down after test `t`: `w.seed()` stores a signed-in session,
 * `w.tab()` opens an api client (a browser tab) on the shared storage, locks and channel,
 * recording its events in `tab.events`; `w.expire()` moves the clock past (or near) the token's expiry.
 * Client defaults keep tests fast: no timer, 1 ms back-off, short waits.
 */
export function createWorld(t, { lifetime = 3600, grantDelay = 0 } = {}) {
  const clock = createClock();
  const auth = createAuthServer({ clock, lifetime });
  const api = createApi({ auth });
  const storage = createStorage();
  const locks = createLockManager({ grantDelay });
  const storageKey = `sk-test-${process.pid}-${++worlds}`;
  const closers = [];
  let bridge = null;
  const w = {
    clock,
    auth,
    api,
    storage,
    locks,
    storageKey,
    lockName: `sessionkeeper:refresh:${storageKey}`,
    /** Signs `email` in at the server and stores the session as a tab would have. */
    seed(email = ANN.email, { now = clock.now } = {}) {
      const session = normalizeSession(auth.issue(email), now());
      storage.setItem(storageKey, JSON.stringify(session));
      return session;
    },
    stored() {
      const raw = storage.data.get(storageKey);
      return raw === undefined ? null : JSON.parse(raw);
    },
    /** Moves the clock on until the token received last has `left` seconds to live (default: none). */
    expire(left = -1) {
      clock.advance((auth.lifetime - left) * 1000);
    },
    /** The server side of cookie mode (made on first use): `w.bridge`. */
    get bridge() {
      bridge ??= createBridge({ auth, clock });
      return bridge;
    },
    cookieSession({ now = clock.now, ...options } = {}) {
      return cookieSession({ url: BRIDGE_URL, authUrl: AUTH_URL, storageKey, storage, fetch: w.bridge.fetch, now, ...options });
    },
    /** A tab in cookie mode: the api client on a cookieSession, its calls to the bridge's API. */
    cookieTab({ now = clock.now, ...options } = {}) {
      return w.tab({ tokens: w.cookieSession({ now }), fetch: w.bridge.fetch, now, ...options });
    },
    authClient({ now = clock.now } = {}) {
      return createAuthClient({ url: AUTH_URL, storageKey, storage, fetch: auth.fetch, now });
    },
    supabase({ now = clock.now } = {}) {
      return createFakeSupabase({ server: auth, now, storageKey });
    },
    async tab({ now = clock.now, tokens, ...options } = {}) {
      const client = createApiClient({
        baseUrl: API_URL,
        tokens: tokens ?? w.authClient({ now }),
        fetch: api.fetch,
        locks,
        now,
        logger: recordingLogger(),
        autoRefresh: false,
        backoffInitial: 1,
        backoffMax: 1000,
        refreshDeadline: 1000,
        lockTimeout: 1000,
        reauthWait: 2000,
        ...options,
      });
      client.events = [];
      client.on((event, detail) => client.events.push({ event, ...detail }));
      closers.push(() => client.close());
      await client.ready;
      return client;
    },
    /** Another tab's BroadcastChannel on this world's name. */
    channel() {
      const channel = new BroadcastChannel(`sessionkeeper:${storageKey}`);
      closers.push(() => channel.close());
      return channel;
    },
  };
  t.after(() => {
    for (const close of closers) close();
  });
  return w;
}

/** A world with Ann signed in and one tab open. */
export async function signedIn(t, options = {}) {
  const w = createWorld(t);
  const seeded = w.seed();
  return { w, seeded, tab: await w.tab(options) };
}

export const count = (client, event) => client.events.filter((e) => e.event === event).length;

/** `n` concurrent calls (GET unless `init` says otherwise), each with X-Request-Id `${prefix}-${i}`. */
export function requests(client, n, { prefix = "r", path = "/items", init = {} } = {}) {
  return Array.from({ length: n }, (_, i) => client.fetch(path, { ...init, headers: { "X-Request-Id": `${prefix}-${i}` } }));
}
