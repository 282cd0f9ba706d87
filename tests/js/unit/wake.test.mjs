// Page events: waking up (focus, visibilitychange) refreshes a due token at once, hidden tabs do
// not refresh, and another tab's storage write is adopted. Node has no window or document, so this
// file (its own process under node --test) gives globalThis a minimal pair before any client exists.
import assert from "node:assert/strict";
import { test } from "node:test";

import { TOKEN_REFRESHED } from "../../../src/sessionkeeper/web/sessionkeeper.js";
import { count, noTokenInLogs, settle, signedIn, until } from "./fakes.mjs";

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

test("after close(), page events no longer refresh", async (t) => {
  const { w, tab } = await signedIn(t, { autoRefresh: true });
  tab.close();
  w.expire(60);
  fire(page, "focus");
  await settle(10);
  assert.equal(w.auth.refreshes, 0);
});

noTokenInLogs();
