// supabaseTokens: the adapter around a supabase-js client (a stand-in that behaves like 2.119).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthExpiredError,
  IssuerError,
  IssuerUnavailableError,
  NEEDS_REAUTH,
  REAUTHENTICATED,
  SIGNED_OUT,
  supabaseTokens,
  TOKEN_REFRESHED,
} from "../../../src/sessionkeeper/web/sessionkeeper.js";
import { ANN, AUTH_URL, count, createWorld, noTokenInLogs, requests, settle, signedIn, supabaseError, track, until } from "./fakes.mjs";

async function supabaseTab(t, options = {}) {
  const w = createWorld(t);
  const sb = w.supabase();
  sb.session = w.auth.issue(ANN.email);
  const tokens = supabaseTokens(sb, { now: w.clock.now });
  const tab = await w.tab({ tokens, ...options });
  return { w, sb, tokens, tab };
}

const CASES = [
  ["AuthApiError 400 refresh_token_not_found", { status: 400, code: "refresh_token_not_found" }, IssuerError],
  ["AuthApiError 400 session_expired", { status: 400, code: "session_expired" }, IssuerError],
  ["AuthApiError 403 session_not_found", { status: 403, code: "session_not_found" }, IssuerError],
  ["AuthRetryableFetchError status 0", { name: "AuthRetryableFetchError", status: 0 }, IssuerUnavailableError],
  ["AuthRetryableFetchError 503", { name: "AuthRetryableFetchError", status: 503 }, IssuerUnavailableError],
  ["AuthApiError 500", { status: 500, code: "unexpected_failure" }, IssuerUnavailableError],
  ["AuthApiError 429", { status: 429, code: "over_request_rate_limit" }, IssuerUnavailableError],
  ["AuthUnknownError without status (a proxy's HTML page)", { name: "AuthUnknownError" }, IssuerUnavailableError],
];

for (const [what, { name = "AuthApiError", ...fields }, expected] of CASES) {
  test(`supabase refresh error ${what} → ${expected.name}`, async (t) => {
    const { sb, tokens, tab } = await supabaseTab(t);
    sb.refreshErrors.push(supabaseError(name, fields));
    await assert.rejects(tokens.refresh(tab.session), (error) => {
      assert.equal(error.constructor, expected);
      if (expected === IssuerError) assert.equal(error.code, fields.code);
      return true;
    });
  });
}

test("supabase: one refresh through the adapter is one TOKEN_REFRESHED", async (t) => {
  const { w, sb, tab } = await supabaseTab(t);
  w.expire(100); // due for us (120 s), not yet for supabase-js's getSession (90 s): refreshSession
  const responses = await Promise.all(requests(tab, 5));
  assert.ok(responses.every((r) => r.status === 200));
  assert.equal(w.auth.refreshes, 1);
  assert.equal(sb.refreshCalls, 1);
  assert.equal(count(tab, TOKEN_REFRESHED), 1);
  assert.equal(tab.stats.adopted, 0);
});

test("supabase: an expired token is refreshed once (by getSession inside the lock), one TOKEN_REFRESHED", async (t) => {
  const { w, sb, tab } = await supabaseTab(t);
  w.expire();
  const responses = await Promise.all(requests(tab, 5));
  assert.ok(responses.every((r) => r.status === 200));
  assert.equal(w.auth.refreshes, 1);
  assert.equal(sb.getSessionRefreshes + sb.refreshCalls, 1);
  assert.equal(count(tab, TOKEN_REFRESHED), 1);
});

/** Ends the session at the server, as a global sign-out from another client does. */
async function endSessionAtServer(w, accessToken) {
  const response = await w.auth.fetch(`${AUTH_URL}/logout?scope=global`, { method: "POST", headers: { Authorization: `Bearer ${accessToken}` } });
  assert.equal(response.status, 204);
}

// supabase-js 2.119's getSession() (the adapter's load, inside our lock) refreshes an expiring
// session itself; when that refresh is refused it drops the session and says SIGNED_OUT. That was
// taken for a sign-out: the user was signed out instead of offered to reconnect.
test("supabase: a session ended at the server is NEEDS_REAUTH (not supabase-js's SIGNED_OUT), and a sign-in replays", async (t) => {
  const { w, sb, tab } = await supabaseTab(t);
  await endSessionAtServer(w, sb.session.access_token);
  w.expire();
  const call = track(tab.fetch("/items"));
  await until(() => tab.state !== "active", { what: "the refusal" });
  await settle();
  assert.equal(tab.state, "needs_reauth");
  assert.equal(count(tab, NEEDS_REAUTH), 1);
  assert.equal(count(tab, SIGNED_OUT), 0);
  assert.equal(call.settled, false);

  await tab.signIn(ANN);
  await call.promise;
  assert.equal(call.value?.status, 200, String(call.error));
  assert.deepEqual(tab.events.filter((e) => e.event === REAUTHENTICATED), [{ event: REAUTHENTICATED, sameUser: true }]);
});

test("supabase: retryable fetch errors after expiry back off, then succeed without NEEDS_REAUTH", async (t) => {
  const { w, sb, tab } = await supabaseTab(t);
  for (let i = 0; i < 3; i += 1) sb.refreshErrors.push(supabaseError("AuthRetryableFetchError", { status: 0 }));
  w.expire();
  assert.equal((await tab.fetch("/items")).status, 200);
  assert.equal(sb.refreshCalls + sb.getSessionRefreshes, 4);
  assert.equal(count(tab, NEEDS_REAUTH), 0);
  assert.equal(count(tab, SIGNED_OUT), 0);
});

test("supabase: a TOKEN_REFRESHED from supabase-js's own refresh is adopted", async (t) => {
  const { w, sb, tab } = await supabaseTab(t);
  const [, body] = w.auth.rotate(sb.session.refresh_token);
  sb.session = body;
  sb.notify("TOKEN_REFRESHED", sb.session);
  assert.equal(tab.session.access_token, body.access_token);
  assert.equal(tab.stats.adopted, 1);
  await tab.fetch("/items");
  assert.equal(w.api.sends.at(-1).token, body.access_token);
  assert.equal(sb.refreshCalls, 0);
});

test("supabase: a SIGNED_OUT from supabase-js is mirrored; a sign-out here signs supabase-js out", async (t) => {
  const { w, sb, tab } = await supabaseTab(t);
  sb.notify("SIGNED_OUT", null);
  assert.equal(tab.state, "signed_out");
  assert.equal(count(tab, SIGNED_OUT), 1);
  await assert.rejects(tab.fetch("/items"), AuthExpiredError);

  const other = await supabaseTab(t);
  const token = other.sb.session.access_token;
  await other.tab.signOut();
  assert.equal(other.sb.session, null);
  assert.deepEqual(other.w.auth.logouts, [{ token, scope: "local" }]);
  assert.equal(count(other.tab, SIGNED_OUT), 1);
  assert.equal(w.api.sends.length, 0);
});

for (const source of ["sessionkeeper", "supabase"]) {
  test(`sign-out with scope "global" (${source}): the server is told the scope`, async (t) => {
    const { w, tab } = await (source === "supabase" ? supabaseTab(t) : signedIn(t));
    const token = tab.session.access_token;
    await tab.signOut({ scope: "global" });
    assert.deepEqual(w.auth.logouts, [{ token, scope: "global" }]);
  });
}

test("supabase: a global sign-out the server never hears of still forgets the session here", async (t) => {
  const { w, sb, tab } = await supabaseTab(t);
  w.auth.logoutDown = true;
  await tab.signOut({ scope: "global" });
  assert.equal(sb.session, null);
  assert.equal(tab.state, "signed_out");
  assert.equal(w.auth.logouts[0].scope, "global");
});

noTokenInLogs();

test("supabase: a local clock 10 minutes ahead (300 s tokens) does not refresh on every call", async (t) => {
  const w = createWorld(t, { lifetime: 300 });
  const sb = w.supabase(); // supabase-js's expires_at comes from the server's clock
  const ahead = () => w.clock.now() + 10 * 60 * 1000;
  const tokens = supabaseTokens(sb, { now: ahead });
  const tab = await w.tab({ tokens, now: ahead });
  await tab.signIn(ANN);
  for (let i = 0; i < 5; i++) assert.equal((await tab.fetch("/items")).status, 200);
  assert.equal(w.auth.refreshes, 0, "a fresh session is not due because the clock is wrong");
  w.clock.advance(200 * 1000); // inside the margin (half of 300 s), by the server's clock
  assert.equal((await tab.fetch("/items")).status, 200);
  assert.equal(w.auth.refreshes, 1);
  for (let i = 0; i < 5; i++) await tab.fetch("/items");
  assert.equal(w.auth.refreshes, 1, "and the refreshed one is not due either");
  noTokenInLogs();
});
