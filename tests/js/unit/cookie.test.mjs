// Cookie mode: cookieSession (the session in HttpOnly cookies set by the server's bridge, a marker in
// localStorage) and the api client's cookie transport (no Authorization header, the CSRF header and
// credentials on every call, refresh through POST /auth/refresh).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthExpiredError,
  createApiClient,
  IssuerError,
  IssuerUnavailableError,
  NEEDS_REAUTH,
  normalizeMarker,
  REAUTHENTICATED,
  SIGNED_IN,
  SIGNED_OUT,
  TOKEN_REFRESHED,
} from "../../../src/sessionkeeper/web/sessionkeeper.js";
import { ANN, BOB, count, createWorld, ISSUED, noTokenInLogs, requests, settle, track, until } from "./fakes.mjs";

/** A world whose browser holds Ann's session cookies (she signed in through a tab), `n` tabs open. */
async function cookieWorld(t, { tabs = 1, lifetime = 3600, ...options } = {}) {
  const w = createWorld(t, { lifetime });
  const first = await w.cookieTab(options);
  await first.signIn(ANN);
  const rest = [];
  for (let i = 1; i < tabs; i += 1) rest.push(await w.cookieTab(options));
  return { w, tabs: [first, ...rest], tab: first };
}

/** No token the fake issuer ever handed out is anywhere in storage. */
function assertNoTokenStored(w) {
  for (const [key, value] of w.storage.data) {
    for (const token of ISSUED) assert.ok(!value.includes(token), `storage entry ${key} holds a token`);
  }
}

// -- cookieSession, call by call -------------------------------------------------------------------

test("cookie signIn: the password grant's tokens go to POST /auth/callback and only a marker comes back", async (t) => {
  const w = createWorld(t);
  const provider = w.cookieSession();
  const marker = await provider.signIn(ANN);
  assert.equal(w.auth.signIns, 1);
  const [callback] = w.bridge.callsTo("/auth/callback");
  assert.equal(callback.method, "POST");
  assert.equal(callback.body.event, SIGNED_IN);
  assert.equal(callback.body.session.access_token, w.bridge.jar.access, "the bridge got the tokens and set the cookies");
  assert.equal(callback.body.session.refresh_token, w.bridge.jar.refresh);
  assert.equal(callback.headers.get("Content-Type"), "application/json");
  assert.equal(callback.credentials, "same-origin");
  assert.equal(marker.transport, "cookie");
  assert.match(marker.marker, /^[0-9a-f]{24}$/);
  assert.deepEqual(marker.user, { id: "user-ann", email: ANN.email });
  assert.equal(marker.expires_at_local, w.clock.now() / 1000 + 3600);
  assert.equal(marker.access_token, undefined);
  assert.equal(marker.refresh_token, undefined);
  for (const token of ISSUED) assert.ok(!JSON.stringify(marker).includes(token));
});

test("cookie signIn: wrong password is the issuer's IssuerError, and the bridge is never called", async (t) => {
  const w = createWorld(t);
  await assert.rejects(w.cookieSession().signIn({ ...ANN, password: "wrong" }), (error) => error instanceof IssuerError && error.code === "invalid_credentials");
  assert.equal(w.bridge.calls.length, 0);
});

test("cookie refresh: POST /auth/refresh with the CSRF header; same marker id, new revision, later expiry", async (t) => {
  const w = createWorld(t);
  const provider = w.cookieSession();
  const marker = await provider.signIn(ANN);
  const access = w.bridge.jar.access;
  w.clock.advance(600_000);
  const fresh = await provider.refresh(marker);
  const [call] = w.bridge.callsTo("/auth/refresh");
  assert.equal(call.method, "POST");
  assert.equal(call.headers.get("X-SessionKeeper-CSRF"), "1");
  assert.equal(call.credentials, "same-origin");
  assert.notEqual(w.bridge.jar.access, access, "the server rotated the cookies");
  assert.equal(fresh.marker, marker.marker);
  assert.notEqual(fresh.rev, marker.rev);
  assert.equal(fresh.expires_at_local, marker.expires_at_local + 600);
});

for (const [what, spoil, expected, code] of [
  ["401 refresh_token_already_used", (w) => w.auth.rotate(w.bridge.jar.refresh), IssuerError, "refresh_token_already_used"],
  ["401 refresh_token_not_found", (w) => w.bridge.endSession(), IssuerError, "refresh_token_not_found"],
  ["401 no_session", (w) => Object.assign(w.bridge.jar, { access: null, refresh: null }), IssuerError, "no_session"],
  ["503 issuer_unavailable", (w) => w.bridge.failRefresh("503"), IssuerUnavailableError],
  ["a network error", (w) => w.bridge.failRefresh("network"), IssuerUnavailableError],
]) {
  test(`cookie refresh: ${what} → ${expected.name}`, async (t) => {
    const w = createWorld(t);
    const provider = w.cookieSession();
    const marker = await provider.signIn(ANN);
    await spoil(w);
    await assert.rejects(provider.refresh(marker), (error) => {
      assert.equal(error.constructor, expected);
      if (code) assert.equal(error.code, code);
      return true;
    });
  });
}

test("cookie signOut: POST /auth/callback SIGNED_OUT with the scope; the issuer ends the session, the cookies go", async (t) => {
  const w = createWorld(t);
  const provider = w.cookieSession();
  const marker = await provider.signIn(ANN);
  const access = w.bridge.jar.access;
  await provider.signOut(marker, { scope: "global" });
  const out = w.bridge.callsTo("/auth/callback").at(-1);
  assert.deepEqual(out.body, { event: SIGNED_OUT, session: null, scope: "global" });
  assert.deepEqual(w.auth.logouts, [{ token: access, scope: "global" }]);
  assert.deepEqual(w.bridge.jar, { access: null, refresh: null });
  await provider.signOut(marker);
  assert.equal(w.bridge.callsTo("/auth/callback").at(-1).body.scope, "local", "local by default");
});

test("cookie user(): GET /auth/session, the server's verdict on the cookies", async (t) => {
  const w = createWorld(t);
  const provider = w.cookieSession();
  await provider.signIn(ANN);
  const answer = await provider.user();
  assert.deepEqual(answer.user, { id: "user-ann", email: ANN.email });
  assert.equal(answer.expires_in, 3600);
  assert.equal(w.bridge.callsTo("/auth/session", "GET").length, 1);
});

test("cookie load(): a stored marker is returned without asking the server", async (t) => {
  const w = createWorld(t);
  const marker = await w.cookieSession().signIn(ANN);
  const provider = w.cookieSession();
  await provider.save(marker);
  const loaded = await provider.load();
  assert.equal(loaded.marker, marker.marker);
  assert.equal(w.bridge.callsTo("/auth/session").length, 0);
});

test("cookie load(): no marker → GET /auth/session once; 200 → a marker, saved (a page back from the hosted sign-in)", async (t) => {
  const w = createWorld(t);
  w.bridge.signInOutside(ANN.email);
  const provider = w.cookieSession();
  const [a, b] = await Promise.all([provider.load(), provider.load()]);
  assert.equal(a, b, "two loads at once share one request");
  assert.deepEqual(a.user, { id: "user-ann", email: ANN.email });
  assert.equal(w.bridge.callsTo("/auth/session").length, 1);
  assert.equal(w.stored().marker, a.marker);
  assert.equal((await provider.load()).marker, a.marker);
  assert.equal(w.bridge.callsTo("/auth/session").length, 1);
  assertNoTokenStored(w);
});

test("cookie load(): 401 → null (signed out), asked once per page; 5xx or no answer → undefined, asked again", async (t) => {
  const w = createWorld(t);
  const provider = w.cookieSession();
  assert.equal(await provider.load(), null);
  assert.equal(await provider.load(), null);
  assert.equal(w.bridge.callsTo("/auth/session").length, 1);

  for (const fail of [
    () => {
      throw new TypeError("fetch failed");
    },
    () => new Response(JSON.stringify({ error: "issuer_unavailable" }), { status: 503 }),
  ]) {
    let calls = 0;
    const flaky = w.cookieSession({ fetch: async () => (calls += 1, fail()) });
    assert.equal(await flaky.load(), undefined, "unknown is not signed out");
    assert.equal(await flaky.load(), undefined);
    assert.equal(calls, 2, "an unanswered question is asked again");
  }
});

test("cookie marker: never a token, whatever it is built from", async (t) => {
  const w = createWorld(t);
  const tab = await w.cookieTab({ margin: 10 });
  await tab.signIn(ANN);
  assertNoTokenStored(w);
  w.expire(20);
  await tab.fetch("/items"); // the guard refreshes (X-Session-Expires-At)
  w.expire();
  await tab.fetch("/items"); // the client refreshes (POST /auth/refresh)
  assert.ok(w.bridge.serverRefreshes >= 2);
  assertNoTokenStored(w);
  for (const token of ISSUED) assert.ok(!JSON.stringify(tab.session).includes(token));
  // A stored record with tokens in it (tampered, or from a bearer-mode key) keeps none of them.
  const record = normalizeMarker({ marker: "m1", rev: "r1", access_token: "at-x", refresh_token: "rt-x", user: { id: "u", email: "e", token: "at-x" } }, 0);
  assert.doesNotMatch(JSON.stringify(record), /at-x|rt-x/);
  assert.equal(normalizeMarker({ access_token: "at-x" }, 0), null, "a bearer session is no marker");
  const provider = w.cookieSession();
  await provider.save({ ...tab.session, access_token: "at-x", refresh_token: "rt-x" });
  assert.doesNotMatch(w.storage.getItem(w.storageKey), /at-x|rt-x/);
  await provider.save({ access_token: "at-y", refresh_token: "rt-y", expires_in: 60 });
  assert.doesNotMatch(w.storage.getItem(w.storageKey), /at-y|rt-y/, "a bearer session is not stored at all");
});

// -- the api client in cookie mode ----------------------------------------------------------------

test("cookie transport: no Authorization header ever; the CSRF header and credentials on every request", async (t) => {
  const { w, tab } = await cookieWorld(t);
  w.bridge.refuse(w.bridge.jar.access); // one 401 → refresh → retry on the way
  await tab.fetch("/items", { headers: { "X-Request-Id": "get" } });
  await tab.fetch("/items", { method: "POST", body: "{}", headers: { "X-Request-Id": "post" } });
  await tab.json("/items", { method: "DELETE" });
  await tab.download("/export.csv", { save: false });
  assert.ok(w.bridge.sends.length >= 5);
  for (const send of w.bridge.sends) {
    assert.equal(send.authorization, null, `${send.method} ${send.path} carried Authorization`);
    assert.equal(send.csrf, "1");
    assert.equal(send.credentials, "same-origin");
  }
  assert.deepEqual(w.bridge.attempts("post").map((s) => s.method), ["POST"]);
  assert.ok(w.bridge.sends.every((s) => s.path.startsWith("/api/")));

  const other = await w.cookieTab({ credentials: "include" }); // an API on another origin
  await other.fetch("/items");
  assert.equal(w.bridge.sends.at(-1).credentials, "include");
});

test("cookie transport: an unsafe call without the CSRF header is what the guard refuses", async (t) => {
  const { w } = await cookieWorld(t);
  const response = await w.bridge.fetch("https://app.test/api/items", { method: "POST", credentials: "same-origin" });
  assert.equal(response.status, 403, "the fake guard enforces it, so the test above means something");
});

test("cookie transport: inconsistent options are refused with a clear error", async (t) => {
  const w = createWorld(t);
  const fakes = { fetch: w.bridge.fetch, locks: null, BroadcastChannel: null, logger: null, autoRefresh: false };
  assert.throws(() => createApiClient({ ...fakes, tokens: w.authClient(), transport: "cookie" }), /transport "cookie" needs a cookie token source/);
  assert.throws(() => createApiClient({ ...fakes, tokens: w.cookieSession(), transport: "bearer" }), /no token to send as a bearer header/);
  assert.throws(() => createApiClient({ ...fakes, tokens: w.cookieSession(), transport: "cookies" }), /unknown transport/);
  assert.throws(() => createApiClient({ ...fakes, tokens: w.cookieSession(), credentials: "omit" }), /credentials "same-origin" or "include"/);
  assert.throws(() => w.cookieSession({ credentials: "omit" }), /credentials/);
  const ok = createApiClient({ ...fakes, tokens: w.cookieSession(), transport: "cookie" });
  assert.equal(ok.transport, "cookie");
  assert.equal(ok.credentials, "same-origin");
  ok.close();
  const bearer = createApiClient({ ...fakes, tokens: w.authClient() });
  assert.equal(bearer.transport, "bearer");
  bearer.close();
});

test("cookie transport: a 401 gets one POST /auth/refresh and one retry", async (t) => {
  const { w, tab } = await cookieWorld(t);
  const before = w.bridge.jar.access;
  w.bridge.refuse(before);
  const response = await tab.fetch("/items", { headers: { "X-Request-Id": "one" } });
  assert.equal(response.status, 200);
  assert.deepEqual(w.bridge.attempts("one").map((s) => s.access === before), [true, false]);
  assert.equal(w.bridge.refreshes, 1);
  assert.equal(tab.stats.recoveries, 1);
  assert.equal(count(tab, TOKEN_REFRESHED), 1);
});

test("cookie transport: 20 concurrent 401s share one POST /auth/refresh, each retried once", async (t) => {
  const { w, tab } = await cookieWorld(t);
  w.bridge.refuse(w.bridge.jar.access);
  const responses = await Promise.all(requests(tab, 20));
  assert.ok(responses.every((r) => r.status === 200));
  assert.equal(w.bridge.refreshes, 1);
  for (let i = 0; i < 20; i += 1) assert.equal(w.bridge.attempts(`r-${i}`).length, 2);
});

test("cookie transport: refreshes ahead of the marker's expiry through POST /auth/refresh", async (t) => {
  const { w, tab } = await cookieWorld(t);
  const expiry = tab.session.expires_at_local;
  w.clock.advance((3600 - 121) * 1000);
  await tab.fetch("/items");
  assert.equal(w.bridge.refreshes, 0);
  w.clock.advance(2000); // 119 s left: due
  await tab.fetch("/items");
  assert.equal(w.bridge.refreshes, 1);
  assert.equal(tab.session.expires_at_local, expiry + 3600 - 119);
  assert.equal(w.stored().rev, tab.session.rev, "the new marker is stored");
});

test("cookie transport: transient refresh failures keep the session; a call with a live cookie goes ahead", async (t) => {
  const { w, tab } = await cookieWorld(t);
  w.bridge.failRefresh("503");
  w.expire(60);
  assert.equal((await tab.fetch("/items")).status, 200);
  assert.equal(tab.state, "active");
  assert.equal(count(tab, NEEDS_REAUTH), 0);
  w.bridge.heal();
  w.bridge.failRefresh("network", 2);
  w.expire();
  assert.equal((await tab.fetch("/items")).status, 200, "backed off, then refreshed");
  assert.equal(count(tab, NEEDS_REAUTH), 0);
});

test("cookie transport: the guard's X-Session-Expires-At moves the marker on; no POST /auth/refresh needed", async (t) => {
  const { w, tabs: [a, b] } = await cookieWorld(t, { tabs: 2, margin: 10 });
  const before = a.session;
  w.expire(20); // inside the guard's 30 s, outside the client's 10 s
  assert.equal((await a.fetch("/items")).status, 200);
  assert.equal(w.bridge.serverRefreshes, 1);
  assert.equal(w.bridge.refreshes, 0);
  assert.equal(a.session.marker, before.marker);
  assert.equal(a.session.expires_at_local, w.clock.now() / 1000 + 3600);
  assert.deepEqual(a.events.filter((e) => e.event === TOKEN_REFRESHED), [{ event: TOKEN_REFRESHED, why: "server" }]);
  assert.equal(w.stored().rev, a.session.rev);
  await until(() => b.session.expires_at_local === a.session.expires_at_local, { what: "the other tab to adopt the new marker" });
  assert.equal(b.session.rev, a.session.rev);
  w.clock.advance(1000);
  await a.fetch("/items");
  assert.equal(w.bridge.refreshes, 0);
});

test("cookie transport: an X-Session-Expires-At that moves nothing (sent on every answer, stale, garbage) changes nothing", async (t) => {
  const { w, tab } = await cookieWorld(t);
  w.bridge.expiresHeader = "always";
  const before = tab.session;
  for (let i = 0; i < 3; i += 1) await tab.fetch("/items");
  assert.equal(tab.session, before);
  assert.equal(count(tab, TOKEN_REFRESHED), 0);
  const provider = w.cookieSession();
  const answer = (value) => new Response("{}", { headers: { "X-Session-Expires-At": value } });
  assert.equal(provider.observe(before, answer(String(before.expires_at_local - 100))), null);
  assert.equal(provider.observe(before, answer("soon")), null);
  assert.equal(provider.observe(before, new Response("{}")), null);
  assert.equal(provider.observe(before, answer(String(before.expires_at_local + 600))).expires_at_local, before.expires_at_local + 600);
});

test("cookie transport: without X-Session-Expires-At the client refreshes the marker itself when due", async (t) => {
  const { w, tab } = await cookieWorld(t, { margin: 10 });
  w.bridge.expiresHeader = false;
  w.expire(20);
  await tab.fetch("/items"); // the guard refreshed; the page cannot tell
  assert.equal(w.bridge.serverRefreshes, 1);
  w.clock.advance(11_000); // the marker says 9 s left: due
  assert.equal((await tab.fetch("/items")).status, 200);
  assert.equal(w.bridge.refreshes, 1, "one cheap POST /auth/refresh");
  assert.equal(tab.state, "active");
});

test("cookie transport: a session revoked at the server → NEEDS_REAUTH once, calls wait, reconnect replays them", async (t) => {
  const { w, tab } = await cookieWorld(t);
  await w.bridge.endSession();
  const first = track(tab.fetch("/items", { method: "POST", body: "{}", headers: { "X-Request-Id": "queued" } }));
  await until(() => count(tab, NEEDS_REAUTH) === 1, { what: "NEEDS_REAUTH" });
  const second = track(tab.fetch("/items", { headers: { "X-Request-Id": "later" } }));
  await settle(20);
  assert.equal(tab.state, "needs_reauth");
  assert.equal(first.settled || second.settled, false);
  assert.equal(w.bridge.refreshes, 1);
  assert.equal(w.bridge.attempts("queued").length, 1);
  await tab.signIn(ANN); // the banner's inline form
  await Promise.all([first.promise, second.promise]);
  assert.equal(first.value?.status, 200, String(first.error));
  assert.equal(second.value?.status, 200, String(second.error));
  assert.equal(w.bridge.attempts("queued").length, 2);
  assert.equal(count(tab, NEEDS_REAUTH), 1);
  assert.deepEqual(tab.events.filter((e) => e.event === REAUTHENTICATED), [{ event: REAUTHENTICATED, sameUser: true }]);
});

test("cookie transport: another user reconnecting at the banner does not get the queued calls", async (t) => {
  const { w, tab } = await cookieWorld(t);
  await w.bridge.endSession();
  const queued = track(tab.fetch("/items", { headers: { "X-Request-Id": "queued" } }));
  await until(() => tab.state === "needs_reauth", { what: "needs re-auth" });
  await tab.signIn(BOB);
  await queued.promise;
  assert.equal(queued.error?.reason, "user_changed");
  assert.equal((await tab.json("/items")).user, "user-bob");
});

test("cookie transport: an API that refuses everything → at most two sends a call, one refresh, NEEDS_REAUTH once", async (t) => {
  const { w, tab } = await cookieWorld(t, { reauthWait: 50 });
  w.bridge.refuseAll = true;
  const outcomes = await Promise.allSettled(requests(tab, 10));
  assert.ok(outcomes.every((o) => o.reason instanceof AuthExpiredError));
  for (let i = 0; i < 10; i += 1) assert.ok(w.bridge.attempts(`r-${i}`).length <= 2);
  assert.equal(w.bridge.refreshes, 1);
  assert.equal(count(tab, NEEDS_REAUTH), 1);
});

test("cookie tabs: two tabs with a due marker make one POST /auth/refresh; the other adopts it", async (t) => {
  const { w, tabs: [a, b] } = await cookieWorld(t, { tabs: 2 });
  w.expire();
  const responses = await Promise.all([...requests(a, 5, { prefix: "a" }), ...requests(b, 5, { prefix: "b" })]);
  assert.ok(responses.every((r) => r.status === 200));
  assert.equal(w.bridge.refreshes, 1);
  assert.equal(a.stats.refreshes + b.stats.refreshes, 1);
  assert.equal(a.session.rev, b.session.rev);
});

test("cookie tabs: a refusal in one tab puts the others in needs-reauth (keyed by the marker), no refresh of their own", async (t) => {
  const { w, tabs: [a, b, c] } = await cookieWorld(t, { tabs: 3 });
  await w.bridge.endSession();
  w.expire();
  await assert.rejects(a.fetch("/items"), AuthExpiredError);
  await until(() => count(b, NEEDS_REAUTH) === 1 && count(c, NEEDS_REAUTH) === 1, { what: "NEEDS_REAUTH in the other tabs" });
  assert.equal(w.bridge.refreshes, 1);
  assert.match(b.events.find((e) => e.event === NEEDS_REAUTH).reason, /another tab/);
});

test("cookie tabs: a refusal reaches a tab on an older revision of the same sign-in (keyed by the marker)", async (t) => {
  const { w, tabs: [a, b] } = await cookieWorld(t, { tabs: 2 });
  b.session = { ...b.session, rev: "older" }; // b has not heard of a's last refresh yet
  await w.bridge.endSession();
  w.expire();
  await assert.rejects(a.fetch("/items"), AuthExpiredError);
  await until(() => count(b, NEEDS_REAUTH) === 1, { what: "NEEDS_REAUTH in the other tab" });
  assert.equal(w.bridge.refreshes, 1);
});

test("cookie tabs: a refusal message about another marker changes nothing", async (t) => {
  const { w, tab } = await cookieWorld(t);
  w.channel().postMessage({ type: "refused", refresh: "00000000", code: "refresh_token_not_found" });
  await settle(20);
  assert.equal(tab.state, "active");
});

test("cookie tabs: sign-out in one tab → SIGNED_OUT in the other within a second; marker and cookies gone", async (t) => {
  const { w, tabs: [a, b] } = await cookieWorld(t, { tabs: 2 });
  const started = Date.now();
  await a.signOut();
  await until(() => count(b, SIGNED_OUT) === 1, { timeout: 1000, what: "SIGNED_OUT in the other tab" });
  assert.ok(Date.now() - started < 1000);
  assert.equal(w.stored(), null);
  assert.deepEqual(w.bridge.jar, { access: null, refresh: null });
  assert.deepEqual(w.bridge.callsTo("/auth/callback").at(-1).body, { event: SIGNED_OUT, session: null, scope: "local" });
  await assert.rejects(b.fetch("/items"), AuthExpiredError);
  assert.equal(b.session, null);
});

test("cookie tabs: a tab opened after a hosted sign-in finds the session; a signed-out tab adopts a later sign-in", async (t) => {
  const w = createWorld(t);
  const out = await w.cookieTab(); // nobody signed in yet
  assert.equal(out.state, "signed_out");
  assert.deepEqual(out.events, []);
  w.bridge.signInOutside(ANN.email); // the hosted sign-in, in another tab
  const back = await w.cookieTab(); // the page it lands on
  assert.equal(back.state, "active");
  assert.deepEqual(back.user, { id: "user-ann", email: ANN.email });
  assert.equal((await back.json("/items")).user, "user-ann");
  w.channel().postMessage({ type: "session" }); // as the marker's storage event says in a browser
  await until(() => out.state === "active", { what: "the signed-out tab to adopt the session" });
  assert.equal(out.session.marker, back.session.marker);
  assert.equal(w.bridge.callsTo("/auth/session").length, 2, "one question per page");
});

test("cookie: api.signIn() without credentials adopts the session the server's cookies hold (after popupSignIn)", async (t) => {
  const { w, tab } = await cookieWorld(t);
  await w.bridge.endSession();
  const queued = track(tab.fetch("/items"));
  await until(() => tab.state === "needs_reauth", { what: "needs re-auth" });
  await assert.rejects(tab.signIn(), (error) => error instanceof IssuerError);
  w.bridge.signInOutside(ANN.email); // the popup's hosted sign-in set new cookies
  await tab.signIn();
  await queued.promise;
  assert.equal(queued.value?.status, 200, String(queued.error));
});

noTokenInLogs();
