// createSessionListener: supabase-js's session changes posted to the server's session bridge
// (POST /auth/callback), in order, with bounded retries, a newer event superseding an older one.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createSessionListener } from "../../../src/sessionkeeper/web/sessionkeeper.js";
import { ANN, createClock, createWorld, noTokenInLogs, recordingLogger, settle, until, warnings } from "./fakes.mjs";

const CALLBACK = "https://app.test/auth/callback";
const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

/**
 * A supabase-js stand-in, a callback endpoint that answers from `script` (a status, "network", or
 * a function returning a promise of either; 200 once the script is spent), and a listener whose
 * back-off runs on an injected clock.
 */
function setup(t, { script = [], ...options } = {}) {
  const w = createWorld(t);
  const sb = w.supabase();
  const clock = createClock();
  const posts = [];
  let inFlight = 0;
  let most = 0;
  const fetch = async (url, init) => {
    const body = JSON.parse(init.body);
    posts.push({ url: String(url), init, body, at: clock.now() });
    inFlight += 1;
    most = Math.max(most, inFlight);
    try {
      let step = script.shift() ?? 200;
      if (typeof step === "function") step = await step();
      await settle(1);
      if (step === "network") throw new TypeError("fetch failed");
      return step >= 400 ? json(step, { error: "nope" }) : json(step, { event: body.event, user: null, expires_in: null, expires_at: null });
    } finally {
      inFlight -= 1;
    }
  };
  const slept = [];
  const sleep = async (ms) => {
    slept.push(ms);
    clock.advance(ms);
    await settle(1);
  };
  const listener = createSessionListener(sb, { url: CALLBACK, fetch, sleep, logger: recordingLogger(), ...options });
  t.after(() => listener.unsubscribe());
  const session = () => w.auth.issue(ANN.email);
  return { w, sb, clock, posts, slept, listener, session, most: () => most };
}

test("listener: each supabase-js event maps to the callback's event; others are not posted", async (t) => {
  const { sb, posts, listener, session } = setup(t);
  const cases = [
    ["SIGNED_IN", session(), "SIGNED_IN"],
    ["INITIAL_SESSION", session(), "SIGNED_IN"],
    ["INITIAL_SESSION", null, null],
    ["TOKEN_REFRESHED", session(), "TOKEN_REFRESHED"],
    ["USER_UPDATED", session(), "TOKEN_REFRESHED"],
    ["PASSWORD_RECOVERY", session(), null],
    ["MFA_CHALLENGE_VERIFIED", session(), null],
    ["SIGNED_OUT", null, "SIGNED_OUT"],
  ];
  for (const [event, value, expected] of cases) {
    const before = posts.length;
    sb.notify(event, value);
    await listener.idle();
    assert.deepEqual(posts.slice(before).map((p) => p.body.event), expected ? [expected] : [], event);
  }
});

test("listener: the payload is {event, session} with the session's token fields; JSON, same-origin, POST", async (t) => {
  const { sb, posts, listener, session } = setup(t);
  const s = { ...session(), provider_token: "pt-secret", provider_refresh_token: "prt-secret", user: { id: "user-ann", email: ANN.email, app_metadata: { x: 1 } } };
  sb.notify("SIGNED_IN", s);
  sb.notify("SIGNED_OUT", null);
  await listener.idle();
  const [signIn, signOut] = posts;
  assert.equal(signIn.url, CALLBACK);
  assert.equal(signIn.init.method, "POST");
  assert.equal(signIn.init.credentials, "same-origin");
  assert.equal(new Headers(signIn.init.headers).get("Content-Type"), "application/json");
  assert.deepEqual(signIn.body, {
    event: "SIGNED_IN",
    session: { access_token: s.access_token, refresh_token: s.refresh_token, expires_in: s.expires_in, expires_at: s.expires_at, token_type: "bearer", user: { id: "user-ann", email: ANN.email } },
  });
  assert.deepEqual(signOut.body, { event: "SIGNED_OUT", session: null });
});

for (const failure of [503, 500, "network"]) {
  test(`listener: ${failure} is retried, 3 attempts at most, 250 ms then 1000 ms apart`, async (t) => {
    const { sb, posts, slept, listener, session } = setup(t, { script: [failure, failure] });
    sb.notify("SIGNED_IN", session());
    await listener.idle();
    assert.equal(posts.length, 3);
    assert.deepEqual(slept, [250, 1000]);
    assert.deepEqual(posts.map((p) => p.at - posts[0].at), [0, 250, 1250], "on the injected clock");

    const more = setup(t, { script: [failure, failure, failure, failure] });
    more.sb.notify("TOKEN_REFRESHED", more.session());
    await more.listener.idle();
    assert.equal(more.posts.length, 3, "given up after three attempts");
    assert.deepEqual(more.slept, [250, 1000]);
    assert.ok(warnings(/session callback failed; giving up/).length > 0);
  });
}

for (const status of [400, 401, 403, 404]) {
  test(`listener: a ${status} is never retried`, async (t) => {
    const { sb, posts, slept, listener, session } = setup(t, { script: [status] });
    sb.notify("SIGNED_IN", session());
    await listener.idle();
    assert.equal(posts.length, 1);
    assert.deepEqual(slept, []);
    assert.ok(warnings(/session callback refused/).length > 0);
  });
}

test("listener: attempts and delays are options", async (t) => {
  const { sb, posts, slept, listener, session } = setup(t, { script: [503, 503, 503, 503], attempts: 4, delays: [10, 20] });
  sb.notify("SIGNED_IN", session());
  await listener.idle();
  assert.equal(posts.length, 4);
  assert.deepEqual(slept, [10, 20, 20]);
});

test("listener: a SIGNED_OUT supersedes a TOKEN_REFRESHED still retrying; the stale one never lands after it", async (t) => {
  let holdSleep;
  // The back-off after the first failure waits until released (released only at the end).
  const { sb, posts, listener, session } = setup(t, {
    script: [503],
    sleep: () => new Promise((resolve) => (holdSleep = resolve)),
  });
  sb.notify("TOKEN_REFRESHED", session());
  await until(() => holdSleep, { what: "the back-off" });
  sb.notify("SIGNED_OUT", null);
  await listener.idle();
  holdSleep();
  await settle(10);
  assert.deepEqual(posts.map((p) => p.body.event), ["TOKEN_REFRESHED", "SIGNED_OUT"]);
});

test("listener: a post that fails after a newer event arrived is not retried: no back-off, the newer one goes", async (t) => {
  let fail;
  const gate = () => new Promise((resolve) => (fail = () => resolve(503)));
  const { sb, posts, slept, listener, session } = setup(t, { script: [gate] });
  sb.notify("TOKEN_REFRESHED", session());
  await until(() => fail, { what: "the first post" });
  sb.notify("SIGNED_OUT", null);
  fail();
  await listener.idle();
  assert.deepEqual(posts.map((p) => p.body.event), ["TOKEN_REFRESHED", "SIGNED_OUT"]);
  assert.deepEqual(slept, []);
});

test("listener: posts go one at a time, in order; events queued behind a post collapse to the newest", async (t) => {
  let release;
  const gate = () => new Promise((resolve) => (release = () => resolve(200)));
  const { sb, posts, listener, session, most } = setup(t, { script: [gate] });
  const first = session();
  sb.notify("SIGNED_IN", first);
  await until(() => posts.length === 1, { what: "the first post" });
  const second = session();
  const third = session();
  sb.notify("TOKEN_REFRESHED", second);
  sb.notify("TOKEN_REFRESHED", third);
  await settle(10);
  assert.equal(posts.length, 1, "nothing else goes out while a post is on the wire");
  release();
  await listener.idle();
  assert.deepEqual(posts.map((p) => [p.body.event, p.body.session.access_token]), [
    ["SIGNED_IN", first.access_token],
    ["TOKEN_REFRESHED", third.access_token],
  ]);
  assert.equal(most(), 1);
});

test("listener: a failing SIGNED_IN overtaken by TOKEN_REFRESHED is still a sign-in, with the newer session", async (t) => {
  let holdSleep;
  const { sb, posts, listener, session } = setup(t, { script: [503], sleep: () => new Promise((resolve) => (holdSleep = resolve)) });
  sb.notify("SIGNED_IN", session());
  await until(() => holdSleep, { what: "the back-off" });
  const newer = session();
  sb.notify("TOKEN_REFRESHED", newer);
  await listener.idle();
  assert.deepEqual(posts.map((p) => p.body.event), ["SIGNED_IN", "SIGNED_IN"]);
  assert.equal(posts[1].body.session.access_token, newer.access_token);
});

test("listener: unsubscribe stops posting; idle() resolves at once when nothing is pending", async (t) => {
  const { sb, posts, listener, session } = setup(t);
  await listener.idle();
  listener.unsubscribe();
  sb.notify("SIGNED_IN", session());
  await settle(5);
  await listener.idle();
  assert.equal(posts.length, 0);
});

noTokenInLogs();
