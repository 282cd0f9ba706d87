// Page events: waking up (focus, visibilitychange) refreshes a due token at once, hidden tabs do
// not refresh, and another tab's storage write is adopted. Node has no window or document, so this
// file (its own process under node --test) gives globalThis a minimal pair before any client exists.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SIGNED_OUT, supabaseTokens, TOKEN_REFRESHED } from "../../../src/sessionkeeper/web/sessionkeeper.js";
import { ANN, count, createWorld, noTokenInLogs, settle, signedIn, until } from "./fakes.mjs";

const page = new EventTarget();
globalThis.addEventListener = page.addEventListener.bind(page);
globalThis.removeEventListener = page.removeEventListener.bind(page);
const document = Object.assign(new EventTarget(), { visibilityState: "visible" });
globalThis.document = document;

const fire = (target, type, fields = {}) => target.dispatchEvent(Object.assign(new Event(type), fields));

test("wake-up: focus after a sleep refreshes a due token at once, before any call", async (t) => {
  const { w, tab } = await signedIn(t, { autoRefresh: true });
  w.expire(60); // the machine slept: the timer, armed for later, has not fired
  fire(page, "focus");
  await until(() => w.auth.refreshes === 1, { what: "the wake-up refresh" });
  assert.equal(count(tab, TOKEN_REFRESHED), 1);
  fire(page, "online");
  await settle(10);
  assert.equal(w.auth.refreshes, 1, "a fresh token is not due");
});

test("a hidden tab does not refresh on its own; becoming visible does", async (t) => {
  const { w } = await signedIn(t, { autoRefresh: true });
  document.visibilityState = "hidden";
  t.after(() => {
    document.visibilityState = "visible";
  });
  w.expire(60);
  fire(page, "focus");
  await settle(10);
  assert.equal(w.auth.refreshes, 0);
  document.visibilityState = "visible";
  fire(document, "visibilitychange");
  await until(() => w.auth.refreshes === 1, { what: "the refresh on becoming visible" });
});

test("a storage event for the session key adopts what another tab wrote; other keys are ignored", async (t) => {
  const { w, tab } = await signedIn(t);
  const other = w.seed(); // another tab signed in again and wrote its session
  fire(page, "storage", { key: "something-else" });
  await settle();
  assert.notEqual(tab.session.access_token, other.access_token);
  fire(page, "storage", { key: w.storageKey });
  await until(() => tab.session.access_token === other.access_token, { what: "adoption" });
  assert.equal(tab.stats.adopted, 1);
});

// supabase-js's getSession() refreshes any session within 90 s of expiry, and its refresh writes
// localStorage, which is a storage event in every other tab. Re-reading the adapter on those events
// made two tabs with short-lived tokens refresh each other in a loop (hundreds of /token calls a
// minute in Chromium). supabase-js tells the adapter about other tabs' changes itself.
test("supabase-js tokens: another tab's storage write or message does not make this tab refresh", async (t) => {
  const w = createWorld(t, { lifetime: 60 }); // inside supabase-js's 90 s margin from the start
  const sb = w.supabase();
  sb.session = w.auth.issue(ANN.email);
  const tab = await w.tab({ tokens: supabaseTokens(sb, { now: w.clock.now }) });
  const before = w.auth.refreshes;
  fire(page, "storage", { key: w.storageKey });
  w.channel().postMessage({ type: "session" });
  await settle(20);
  assert.equal(w.auth.refreshes, before);
  assert.equal(tab.state, "active");
  // What supabase-js passes on from another tab is still adopted.
  const [, body] = w.auth.rotate(sb.session.refresh_token);
  sb.session = body;
  sb.notify("TOKEN_REFRESHED", sb.session);
  assert.equal(tab.session.access_token, body.access_token);
});

test("cookie mode: a storage event on the marker key mirrors another tab's sign-out and sign-in (no BroadcastChannel)", async (t) => {
  const w = createWorld(t);
  const a = await w.cookieTab({ BroadcastChannel: null });
  await a.signIn(ANN);
  const b = await w.cookieTab({ BroadcastChannel: null });
  assert.equal(b.state, "active");
  await a.signOut();
  fire(page, "storage", { key: w.storageKey });
  await until(() => count(b, SIGNED_OUT) === 1, { timeout: 1000, what: "SIGNED_OUT in the other tab" });
  await a.signIn(ANN);
  fire(page, "storage", { key: w.storageKey });
  await until(() => b.state === "active", { timeout: 1000, what: "the other tab to adopt the new sign-in" });
  assert.equal(b.session.marker, a.session.marker);
  assert.equal(w.bridge.callsTo("/auth/session").length, 1, "only a's question at start-up, before anyone signed in");
});

test("after close(), page events no longer refresh", async (t) => {
  const { w, tab } = await signedIn(t, { autoRefresh: true });
  tab.close();
  w.expire(60);
  fire(page, "focus");
  await settle(10);
  assert.equal(w.auth.refreshes, 0);
});

noTokenInLogs();
