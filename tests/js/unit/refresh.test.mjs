// When the api client refreshes, how often, and what a 401 does.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AuthExpiredError, NEEDS_REAUTH, TOKEN_REFRESHED } from "../../../src/sessionkeeper/web/sessionkeeper.js";
import { ANN, count, createWorld, noTokenInLogs, requests, signedIn, track, until } from "./fakes.mjs";

const seconds = (s) => s * 1000;

test("proactive: a token inside the margin is refreshed before the call, one outside it is not", async (t) => {
  const { w, seeded, tab } = await signedIn(t, { margin: 120 });

  w.clock.advance(seconds(3600 - 121));
  assert.equal((await tab.fetch("/items")).status, 200);
  assert.equal(w.auth.refreshes, 0);
  assert.equal(w.api.sends.at(-1).token, seeded.access_token);

  w.clock.advance(seconds(2)); // 119 s left
  assert.equal((await tab.fetch("/items")).status, 200);
  assert.equal(w.auth.refreshes, 1);
  assert.notEqual(w.api.sends.at(-1).token, seeded.access_token, "the call went out with the refreshed token");
  assert.equal(tab.session.access_token, w.api.sends.at(-1).token);
  assert.equal(count(tab, TOKEN_REFRESHED), 1);
  assert.equal(w.stored().access_token, tab.session.access_token, "the refreshed session is stored");
});

test("proactive: the margin is capped at half the lifetime, so a 5 s token is not refreshed on every call", async (t) => {
  const w = createWorld(t, { lifetime: 5 });
  w.seed();
  const tab = await w.tab({ margin: 120 });
  await Promise.all(requests(tab, 10));
  w.clock.advance(2000); // 3 s left of 5: outside the 2.5 s window
  await Promise.all(requests(tab, 10));
  assert.equal(w.auth.refreshes, 0);

  w.clock.advance(1000); // 2 s left: inside it
  await tab.fetch("/items");
  assert.equal(w.auth.refreshes, 1);
  for (let i = 0; i < 10; i += 1) await tab.fetch("/items");
  assert.equal(w.auth.refreshes, 1, "the fresh 5 s token is not due again at once");
});

// Without Web Locks (locks: null) only the tab's shared promise stands between 50 calls and 50
// refreshes; with them, the lock and the re-read inside it would hide a missing shared promise.
for (const locks of ["Web Locks", "no Web Locks"]) {
  test(`single flight (${locks}): 50 concurrent calls with an expired token make one refresh and never send it`, async (t) => {
    const { w, seeded, tab } = await signedIn(t, locks === "Web Locks" ? {} : { locks: null });
    w.expire();
    const responses = await Promise.all(requests(tab, 50));
    assert.deepEqual(new Set(responses.map((r) => r.status)), new Set([200]));
    assert.equal(w.auth.refreshes, 1);
    assert.equal(w.api.sends.length, 50);
    assert.equal(w.api.saw(seeded.access_token), false);
    assert.equal(count(tab, TOKEN_REFRESHED), 1);
  });

  test(`401 (${locks}): 20 concurrent calls that all get 401 share one refresh and are each retried once`, async (t) => {
    const { w, seeded, tab } = await signedIn(t, locks === "Web Locks" ? {} : { locks: null });
    w.api.refuse(seeded.access_token);
    const responses = await Promise.all(requests(tab, 20));
    assert.ok(responses.every((r) => r.status === 200));
    assert.equal(w.auth.refreshes, 1);
    for (let i = 0; i < 20; i += 1) {
      assert.deepEqual(w.api.attempts(`r-${i}`).map((s) => s.token === seeded.access_token), [true, false]);
    }
  });
}

test("401: a token the API refuses gets one refresh and one retry", async (t) => {
  const { w, seeded, tab } = await signedIn(t);
  w.api.refuse(seeded.access_token); // revoked at the API; the refresh token still works
  const response = await tab.fetch("/items", { headers: { "X-Request-Id": "one" } });
  assert.equal(response.status, 200);
  const sent = w.api.attempts("one");
  assert.equal(sent.length, 2);
  assert.equal(sent[0].token, seeded.access_token);
  assert.equal(sent[1].token, tab.session.access_token);
  assert.equal(w.auth.refreshes, 1);
  assert.equal(tab.stats.recoveries, 1);
});

test("no loop: an API that refuses everything costs at most two sends a call and one refresh, then NEEDS_REAUTH once", async (t) => {
  const { w, tab } = await signedIn(t, { reauthWait: 50 });
  w.api.refuseAll = true;
  const outcomes = await Promise.allSettled(requests(tab, 20));
  for (const outcome of outcomes) {
    assert.equal(outcome.status, "rejected");
    assert.ok(outcome.reason instanceof AuthExpiredError, String(outcome.reason));
  }
  for (let i = 0; i < 20; i += 1) assert.ok(w.api.attempts(`r-${i}`).length <= 2);
  assert.ok(w.auth.refreshes <= 1);
  assert.equal(count(tab, NEEDS_REAUTH), 1);
  assert.equal(tab.state, "needs_reauth");

  const sends = w.api.sends.length;
  await assert.rejects(tab.fetch("/items"), AuthExpiredError); // waits reauthWait, then gives up
  assert.equal(w.api.sends.length, sends, "nothing is sent while re-authentication is needed");
  assert.ok(w.auth.refreshes <= 1);
  assert.equal(count(tab, NEEDS_REAUTH), 1);
  assert.ok(w.stored(), "the session is not cleared");
});

test("no loop: a first 401 on the token a 401-recovery just produced ends the session without a second refresh", async (t) => {
  const { w, tab } = await signedIn(t, { reauthWait: 50 });
  w.api.refuseAll = true;
  w.api.slow.set("a", 30); // a's retry is still out when b's first answer comes back
  const a = track(tab.fetch("/items", { headers: { "X-Request-Id": "a" } }));
  await until(() => count(tab, TOKEN_REFRESHED) === 1, { what: "a's recovery" });
  const b = track(tab.fetch("/items", { headers: { "X-Request-Id": "b" } }));
  await Promise.all([a.promise, b.promise]);
  assert.ok(a.error instanceof AuthExpiredError && b.error instanceof AuthExpiredError);
  assert.equal(w.api.attempts("b").length, 1);
  assert.equal(w.auth.refreshes, 1);
  assert.equal(count(tab, NEEDS_REAUTH), 1);
});

test("body replay: a POST retried after a 401 sends the same method and body", async (t) => {
  const { w, seeded, tab } = await signedIn(t);
  w.api.refuse(seeded.access_token);
  const body = JSON.stringify({ name: "Ann", tags: ["a", "b"] });
  const response = await tab.fetch("/contacts", { method: "POST", body, headers: { "X-Request-Id": "post", "Content-Type": "application/json" } });
  assert.equal(response.status, 200);
  const sent = w.api.attempts("post");
  assert.equal(sent.length, 2);
  assert.deepEqual(sent.map((s) => [s.method, s.body]), [["POST", body], ["POST", body]]);
});

for (const skewMinutes of [10, -10]) {
  test(`clock skew of ${skewMinutes} min: expiry comes from expires_in at receipt, no refresh loop`, async (t) => {
    const w = createWorld(t, { lifetime: 300 }); // shorter than the skew: a wrong clock would loop
    const now = () => w.clock.now() + skewMinutes * 60000;
    const tab = await w.tab({ now, margin: 60 });
    const session = await tab.signIn(ANN);
    assert.equal(session.expires_at_local, now() / 1000 + 300);
    const statuses = (await Promise.all(requests(tab, 10))).map((r) => r.status);
    assert.equal(w.auth.refreshes, 0);

    w.clock.advance(seconds(300 - 59));
    statuses.push(...(await Promise.all(requests(tab, 10, { prefix: "due" }))).map((r) => r.status));
    assert.equal(w.auth.refreshes, 1);
    for (let i = 0; i < 10; i += 1) statuses.push((await tab.fetch("/items")).status);
    assert.equal(w.auth.refreshes, 1, "a freshly received session is not due");
    assert.deepEqual(new Set(statuses), new Set([200]));
  });
}

noTokenInLogs();
