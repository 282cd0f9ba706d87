// What a failing refresh does: transient failures keep the session, a definitive refusal asks for
// re-authentication (after looking for another tab's newer session), unreadable storage changes
// nothing.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthExpiredError,
  IssuerUnavailableError,
  NEEDS_REAUTH,
  normalizeSession,
  REAUTHENTICATED,
  SIGNED_OUT,
} from "../../../src/sessionkeeper/web/sessionkeeper.js";
import { ANN, BOB, count, createWorld, noTokenInLogs, requests, settle, signedIn, track, until, warnings } from "./fakes.mjs";

/** The session is still there, untouched: in memory, in storage, and no event said otherwise. */
function assertKept(w, tab, session) {
  assert.equal(tab.state, "active");
  assert.equal(tab.session.access_token, session.access_token);
  assert.equal(w.stored().access_token, session.access_token);
  assert.equal(count(tab, NEEDS_REAUTH), 0);
  assert.equal(count(tab, SIGNED_OUT), 0);
}

for (const kind of ["500", "network", "html404"]) {
  test(`transient (${kind}): while the token is valid, calls go on with it and the session is kept`, async (t) => {
    const { w, seeded, tab } = await signedIn(t);
    w.auth.failRefresh(kind);
    w.expire(60); // 60 s left: inside the margin, still valid
    const responses = await Promise.all(requests(tab, 5));
    assert.ok(responses.every((r) => r.status === 200));
    assert.ok(w.api.sends.every((s) => s.token === seeded.access_token));
    assert.equal(w.auth.refreshes, 1, "one attempt, shared, and no retry while the token works");
    assertKept(w, tab, seeded);
    assert.ok(warnings(/refresh failed/).length > 0);
  });

  test(`transient (${kind}): after expiry the client backs off and succeeds once the issuer is back`, async (t) => {
    const { w, seeded, tab } = await signedIn(t);
    w.auth.failRefresh(kind, 3);
    w.expire();
    const responses = await Promise.all(requests(tab, 5));
    assert.ok(responses.every((r) => r.status === 200));
    assert.equal(w.auth.refreshes, 4);
    assert.equal(w.api.saw(seeded.access_token), false);
    assert.equal(count(tab, NEEDS_REAUTH), 0);
    assert.equal(w.stored().access_token, tab.session.access_token);
  });

  test(`transient (${kind}): after expiry and past refreshDeadline, IssuerUnavailableError and the session is kept`, async (t) => {
    const { w, seeded, tab } = await signedIn(t, { refreshDeadline: 30 });
    w.auth.failRefresh(kind);
    w.expire();
    const outcomes = await Promise.allSettled(requests(tab, 5));
    for (const outcome of outcomes) assert.ok(outcome.reason instanceof IssuerUnavailableError, String(outcome.reason));
    assert.ok(w.auth.refreshes > 1, "it backed off and tried again");
    assert.equal(w.api.sends.length, 0, "the expired token was never sent");
    assertKept(w, tab, seeded);

    w.auth.heal();
    assert.equal((await tab.fetch("/items")).status, 200);
  });
}

// While the token still works, each failed attempt pushed the next one only backoffInitial away:
// during an outage the timer, wake-ups and calls asked /token every 500 ms until the token expired.
test("transient, token still valid: consecutive failed attempts back off exponentially", async (t) => {
  const { w, tab } = await signedIn(t, { backoffInitial: 1000, backoffMax: 60_000 });
  w.auth.failRefresh("500");
  w.expire(100); // 100 s left: due (margin 120 s), valid for long enough
  for (let second = 0; second < 15; second += 1) {
    assert.equal((await tab.fetch("/items")).status, 200);
    w.clock.advance(1000);
  }
  // Attempts at 0, 1, 3, 7 s (then 15 s): not one a second.
  assert.equal(w.auth.refreshes, 4);
  w.auth.heal();
  w.clock.advance(1000);
  assert.equal((await tab.fetch("/items")).status, 200);
  assert.equal(w.auth.refreshes, 5);
  assert.equal(tab.state, "active");
});

test("definitive: a refused refresh adopts a newer session another tab stored meanwhile", async (t) => {
  const { w, tab } = await signedIn(t);
  let other;
  w.auth.beforeRefresh = async (refreshToken) => {
    // Another tab spends the same refresh token first and stores what it got.
    w.auth.beforeRefresh = null;
    other = normalizeSession(w.auth.rotate(refreshToken)[1], w.clock.now());
    w.storage.setItem(w.storageKey, JSON.stringify(other));
  };
  w.expire();
  const response = await tab.fetch("/items");
  assert.equal(response.status, 200);
  assert.equal(w.api.sends.at(-1).token, other.access_token);
  assert.equal(w.auth.refreshes, 1);
  assert.equal(tab.stats.adopted, 1);
  assert.equal(count(tab, NEEDS_REAUTH), 0);
});

/** A tab whose refresh is refused for good, with one call already waiting in needs re-auth. */
async function refusedTab(t, options = {}) {
  const w = createWorld(t);
  const seeded = w.seed();
  const tab = await w.tab(options);
  w.auth.failRefresh("not_found");
  w.expire();
  const first = track(tab.fetch("/items", { headers: { "X-Request-Id": "first" } }));
  await until(() => count(tab, NEEDS_REAUTH) === 1, { what: "NEEDS_REAUTH" });
  return { w, tab, seeded, first };
}

test("definitive: NEEDS_REAUTH once, storage kept, calls wait and replay once after the same user signs in", async (t) => {
  const { w, tab, seeded, first } = await refusedTab(t);
  const second = track(tab.fetch("/items", { headers: { "X-Request-Id": "second" } }));
  await settle(20);
  assert.equal(first.settled, false);
  assert.equal(second.settled, false);
  assert.equal(tab.state, "needs_reauth");
  assert.equal(w.api.sends.length, 0);
  assert.equal(w.stored().access_token, seeded.access_token, "the session is not cleared from storage");
  assert.equal(count(tab, SIGNED_OUT), 0);

  w.auth.heal();
  await tab.signIn(ANN);
  await Promise.all([first.promise, second.promise]);
  assert.equal(first.value.status, 200);
  assert.equal(second.value.status, 200);
  assert.equal(w.api.attempts("first").length, 1);
  assert.equal(w.api.attempts("second").length, 1);
  assert.deepEqual(tab.events.filter((e) => e.event === REAUTHENTICATED), [{ event: REAUTHENTICATED, sameUser: true }]);
  assert.equal(count(tab, NEEDS_REAUTH), 1);
  assert.equal(w.auth.refreshes, 1);
});

test("definitive: calls waiting longer than reauthWait reject with AuthExpiredError", async (t) => {
  const { w, tab, first } = await refusedTab(t, { reauthWait: 30 });
  await first.promise;
  assert.ok(first.error instanceof AuthExpiredError);
  assert.equal(first.error.reason, "timeout");
  assert.equal(count(tab, NEEDS_REAUTH), 1);
  assert.ok(w.stored(), "the session is not cleared from storage");
});

test("definitive: when another user signs in, the queued calls reject instead of replaying as them", async (t) => {
  const { w, tab, first } = await refusedTab(t);
  w.auth.heal();
  const bob = await tab.signIn(BOB);
  await first.promise;
  assert.ok(first.error instanceof AuthExpiredError);
  assert.equal(first.error.reason, "user_changed");
  assert.equal(w.api.attempts("first").length, 0);
  assert.deepEqual(tab.events.filter((e) => e.event === REAUTHENTICATED), [{ event: REAUTHENTICATED, sameUser: false }]);
  assert.equal((await tab.json("/items")).user, "user-bob");
  assert.equal(w.api.sends.at(-1).token, bob.access_token);
});

test("definitive: a failed sign-in (wrong password) leaves the calls waiting; the next one releases them", async (t) => {
  const { w, tab, first } = await refusedTab(t);
  w.auth.heal();
  await assert.rejects(tab.signIn({ ...ANN, password: "wrong" }), (error) => error.code === "invalid_credentials");
  await settle();
  assert.equal(first.settled, false);
  assert.equal(tab.state, "needs_reauth");
  await tab.signIn(ANN);
  await first.promise;
  assert.equal(first.value?.status, 200, String(first.error));
});

test("an access token without a refresh token: a 401 asks for re-authentication, and the call replays after it", async (t) => {
  const w = createWorld(t);
  const seeded = w.seed();
  w.storage.setItem(w.storageKey, JSON.stringify({ ...seeded, refresh_token: null })); // e.g. from an OAuth redirect
  const accessOnly = await w.tab();
  w.api.refuse(seeded.access_token);
  const call = track(accessOnly.fetch("/items", { headers: { "X-Request-Id": "call" } }));
  await until(() => count(accessOnly, NEEDS_REAUTH) === 1, { what: "NEEDS_REAUTH" });
  assert.equal(w.auth.refreshes, 0);
  // It asked the issuer once (GET /user), which still accepts the token: the log says so.
  assert.equal(w.auth.userCalls, 1);
  assert.match(accessOnly.events.find((e) => e.event === NEEDS_REAUTH).reason, /issuer accepts it/);
  await accessOnly.signIn(ANN);
  await call.promise;
  assert.equal(call.value?.status, 200, String(call.error));
  assert.equal(w.api.attempts("call").length, 2);
  assert.equal(count(accessOnly, REAUTHENTICATED), 1);
});

// -- storage that cannot be read (or written) is never a sign-out --------------------------------

test("unreadable storage at start-up: not signed in, but no SIGNED_OUT and the entry is left alone", async (t) => {
  const w = createWorld(t);
  w.storage.setItem(w.storageKey, "{not json");
  const tab = await w.tab();
  assert.equal(tab.state, "signed_out");
  assert.deepEqual(tab.events, []);
  assert.equal(w.storage.getItem(w.storageKey), "{not json");
});

for (const [what, spoil] of [
  ["garbage JSON", (w) => w.storage.setItem(w.storageKey, "\u0000garbage{")],
  ["getItem throwing", (w) => (w.storage.readsThrow = true)],
]) {
  test(`unreadable storage (${what}) after sign-in: the session is kept and still refreshes`, async (t) => {
    const { w, seeded, tab } = await signedIn(t);
    spoil(w);
    w.channel().postMessage({ type: "session" }); // another tab says the session changed
    await settle(20);
    assert.equal(tab.state, "active");
    assert.equal(tab.session.access_token, seeded.access_token);
    w.expire();
    assert.equal((await tab.fetch("/items")).status, 200);
    assert.equal(w.auth.refreshes, 1);
    assert.equal(count(tab, SIGNED_OUT), 0);
    assert.equal(count(tab, NEEDS_REAUTH), 0);
  });
}

test("storage that refuses writes: the session lives in memory and survives its refreshes", async (t) => {
  const w = createWorld(t);
  const tab = await w.tab();
  w.storage.writesThrow = true;
  await tab.signIn(ANN);
  for (let round = 0; round < 2; round += 1) {
    w.expire();
    assert.equal((await tab.fetch("/items")).status, 200);
  }
  assert.equal(w.auth.refreshes, 2);
  assert.equal(tab.state, "active");
  assert.equal(count(tab, SIGNED_OUT), 0);
});

noTokenInLogs();
