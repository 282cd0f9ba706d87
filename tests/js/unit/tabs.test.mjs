// Several tabs on one storage, one lock manager and one BroadcastChannel; sign-out; lock time-outs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AuthExpiredError, NEEDS_REAUTH, REAUTHENTICATED, SIGNED_IN, SIGNED_OUT, TOKEN_REFRESHED } from "../../../src/sessionkeeper/web/sessionkeeper.js";
import { ANN, AUTH_URL, count, createWorld, noTokenInLogs, requests, settle, signedIn, track, until, warnings } from "./fakes.mjs";

const signedOutIn = (tab) => until(() => count(tab, SIGNED_OUT) === 1, { what: "SIGNED_OUT" });

// grantDelay 5: the lock reaches the waiting tab after the first tab's BroadcastChannel message.
for (const grantDelay of [0, 5]) {
  test(`two tabs, expired token, both call at once: one refresh, both succeed (lock hand-over ${grantDelay} ms)`, async (t) => {
    const w = createWorld(t, { grantDelay });
    const seeded = w.seed();
    const [a, b] = [await w.tab(), await w.tab()];
    w.expire();
    const responses = await Promise.all([...requests(a, 5, { prefix: "a" }), ...requests(b, 5, { prefix: "b" })]);
    assert.ok(responses.every((r) => r.status === 200));
    assert.equal(w.auth.refreshes, 1);
    assert.equal(a.stats.refreshes + b.stats.refreshes, 1);
    assert.equal(a.stats.adopted + b.stats.adopted, 1, "the other tab adopted the first one's session");
    assert.equal(a.session.access_token, b.session.access_token);
    assert.equal(w.api.saw(seeded.access_token), false);
  });
}

test("a refresh in one tab reaches the other by message, without a refresh of its own", async (t) => {
  const w = createWorld(t);
  w.seed();
  const [a, b] = [await w.tab(), await w.tab()];
  w.expire(60);
  await a.fetch("/items");
  await until(() => b.session.access_token === a.session.access_token, { what: "the other tab to adopt" });
  await b.fetch("/items");
  assert.equal(w.auth.refreshes, 1);
  assert.equal(b.stats.adopted, 1);
  assert.equal(count(b, TOKEN_REFRESHED), 1);
});

test("a 401 in a tab that missed the other's message: the session re-read inside the lock is adopted, no second refresh", async (t) => {
  const { w, seeded, tab: b } = await signedIn(t);
  const a = await w.tab({ BroadcastChannel: null }); // hears nothing from other tabs
  w.api.refuse(seeded.access_token);
  assert.equal((await b.fetch("/items")).status, 200);
  assert.equal(a.session.access_token, seeded.access_token, "tab a has not heard of the refresh");
  assert.equal((await a.fetch("/items")).status, 200);
  assert.equal(w.api.sends.at(-1).token, b.session.access_token);
  assert.equal(w.auth.refreshes, 1);
  assert.equal(a.stats.adopted, 1);
});

test("re-authenticating in one tab releases the calls queued in the other", async (t) => {
  const { w, tab: a } = await signedIn(t);
  const b = await w.tab();
  w.auth.failRefresh("not_found");
  w.expire();
  const queued = [track(a.fetch("/items")), track(b.fetch("/items"))];
  await until(() => a.state === "needs_reauth" && b.state === "needs_reauth", { what: "both tabs to need re-auth" });
  assert.ok(w.auth.refreshes <= 2, "one refusal per tab at most"); // usually 1: the verdict is broadcast
  w.auth.heal();
  await a.signIn(ANN);
  await Promise.all(queued.map((call) => call.promise));
  assert.deepEqual(queued.map((call) => call.value?.status ?? String(call.error)), [200, 200]);
  assert.equal(count(b, REAUTHENTICATED), 1);
  assert.equal(b.session.access_token, a.session.access_token);
});

test("lock timeout: a lock held forever by a frozen tab delays the refresh by lockTimeout, never deadlocks", async (t) => {
  const { w, tab } = await signedIn(t, { lockTimeout: 25 });
  w.locks.holdForever(w.lockName);
  w.expire();
  const started = Date.now();
  const response = await tab.fetch("/items");
  assert.equal(response.status, 200);
  assert.ok(Date.now() - started >= 20, "it waited for the lock first");
  assert.equal(w.auth.refreshes, 1);
  assert.equal(w.locks.aborted, 1);
  assert.equal(warnings(/lock not granted/).length, 1);
});

test("sign-out: storage and memory cleared, /logout called, SIGNED_OUT here and in the other tab", async (t) => {
  const w = createWorld(t);
  const seeded = w.seed();
  const [a, b] = [await w.tab(), await w.tab()];
  await a.signOut();
  assert.equal(w.stored(), null);
  assert.equal(a.session, null);
  assert.equal(a.state, "signed_out");
  assert.deepEqual(w.auth.logouts, [{ token: seeded.access_token, scope: "local" }]);
  assert.equal(count(a, SIGNED_OUT), 1);
  await signedOutIn(b);
  assert.equal(b.session, null);
  await assert.rejects(b.fetch("/items"), AuthExpiredError);
  await assert.rejects(a.fetch("/items"), AuthExpiredError);
  assert.equal(w.api.sends.length, 0);
});

test("sign-out rejects calls waiting for re-authentication, in this tab and in the other", async (t) => {
  const w = createWorld(t);
  w.seed();
  const [a, b] = [await w.tab(), await w.tab()];
  w.auth.failRefresh("not_found");
  w.expire();
  const waiting = [track(a.fetch("/items")), track(b.fetch("/items"))];
  await until(() => a.state === "needs_reauth" && b.state === "needs_reauth", { what: "both tabs to need re-auth" });
  await a.signOut();
  await Promise.all(waiting.map((call) => call.promise));
  for (const call of waiting) {
    assert.ok(call.error instanceof AuthExpiredError, String(call.error));
    assert.equal(call.error.reason, "signed_out");
  }
  assert.equal(w.api.sends.length, 0);
  assert.equal(count(b, SIGNED_OUT), 1);
});

// The server may refuse the refresh (the logout ended the session) or answer it (the logout never
// arrived): either way the user stays signed out.
for (const logoutDown of [false, true]) {
  test(`sign-out while a refresh is on the wire (/logout ${logoutDown ? "lost" : "arrives"}): the user stays signed out`, async (t) => {
    const w = createWorld(t);
    w.seed();
    const tab = await w.tab();
    let answer;
    w.auth.beforeRefresh = () => new Promise((resolve) => (answer = resolve));
    w.auth.logoutDown = logoutDown;
    w.expire();
    const call = track(tab.fetch("/items"));
    await until(() => answer, { what: "the refresh to reach the server" });
    await tab.signOut();
    answer();
    await call.promise;
    assert.ok(call.error instanceof AuthExpiredError, String(call.value?.status));
    assert.equal(call.error.reason, "signed_out");
    assert.equal(tab.state, "signed_out");
    assert.equal(tab.session, null);
    assert.equal(w.stored(), null);
    assert.deepEqual(tab.events.map((e) => e.event), [SIGNED_IN, SIGNED_OUT]); // restored, then signed out
  });
}

test("timer: an idle tab refreshes a token that becomes due, without any call", async (t) => {
  const w = createWorld(t);
  w.seed();
  w.expire(60);
  const tab = await w.tab({ autoRefresh: true });
  await until(() => w.auth.refreshes === 1, { what: "the timer's refresh" });
  await settle(300); // a fresh session is not due: the next timer does not refresh again
  assert.equal(w.auth.refreshes, 1);
  assert.equal(count(tab, TOKEN_REFRESHED), 1);
});

noTokenInLogs();

test("a refresh refused for good in one tab puts the other tabs in needs-reauth without a refresh of their own", async (t) => {
  const w = createWorld(t);
  const seeded = w.seed();
  const [a, b, c] = [await w.tab(), await w.tab(), await w.tab()];
  // The session ends at the server (a global sign-out elsewhere), then the access token expires.
  await w.auth.fetch(`${AUTH_URL}/logout?scope=global`, { method: "POST", headers: { Authorization: `Bearer ${seeded.access_token}` } });
  w.expire();
  await assert.rejects(a.fetch("/items"), AuthExpiredError);
  await until(() => count(b, NEEDS_REAUTH) === 1 && count(c, NEEDS_REAUTH) === 1, { what: "NEEDS_REAUTH in the other tabs" });
  assert.equal(w.auth.refreshes, 1, "only the first tab asked the server");
  assert.match(b.events.find((e) => e.event === NEEDS_REAUTH).reason, /another tab/);
  noTokenInLogs();
});

test("a refusal message about another refresh token changes nothing here", async (t) => {
  const w = createWorld(t);
  w.seed();
  const tab = await w.tab();
  w.channel().postMessage({ type: "refused", refresh: "00000000", code: "refresh_token_not_found" });
  await settle(20);
  assert.equal(tab.state, "active");
  assert.equal(count(tab, NEEDS_REAUTH), 0);
});
