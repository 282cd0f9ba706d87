// A sign-out that lands while a refresh is in flight must win: the late answer neither signs the
// user back in nor writes the session back into storage.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AuthExpiredError, SIGNED_IN, SIGNED_OUT } from "../../../src/sessionkeeper/web/sessionkeeper.js";
import { BOB, count, createWorld, until } from "./fakes.mjs";

/** An auth client whose refresh the server answers at once, but whose answer reaches the tab
 * only when `release()` is called. */
function heldRefresh(w) {
  let release;
  const held = new Promise((resolve) => {
    release = resolve;
  });
  const tokens = w.authClient();
  const refresh = tokens.refresh;
  tokens.refresh = async (session) => {
    const fresh = await refresh(session);
    await held;
    return fresh;
  };
  return { tokens, release };
}

for (const where of ["this tab", "another tab"]) {
  test(`a sign-out in ${where} during a refresh discards the refresh's answer`, async (t) => {
    const w = createWorld(t);
    w.seed();
    const { tokens, release } = heldRefresh(w);
    const [a, b] = [await w.tab({ tokens }), await w.tab()];
    w.expire();
    const call = a.fetch("/items").then(
      () => "ok",
      (error) => error,
    );
    await until(() => w.auth.refreshes === 1, { what: "the refresh to start" });
    await (where === "this tab" ? a : b).signOut();
    await until(() => count(a, SIGNED_OUT) === 1, { what: "SIGNED_OUT in the refreshing tab" });
    release();
    const outcome = await call;
    assert.ok(outcome instanceof AuthExpiredError, `the call failed with ${outcome}`);
    assert.equal(a.state, "signed_out");
    assert.equal(a.session, null);
    assert.equal(w.stored(), null, "the late answer was not written back to storage");
    assert.equal(count(a, SIGNED_IN), 1, "only the restored session at start, no sign-in after");
  });
}

test("signed out and signed in again during a refresh: the late answer does not replace the new session", async (t) => {
  const w = createWorld(t);
  w.seed();
  const { tokens, release } = heldRefresh(w);
  const a = await w.tab({ tokens });
  w.expire();
  const call = a.fetch("/items").then(
    () => "ok",
    (error) => error,
  );
  await until(() => w.auth.refreshes === 1, { what: "the refresh to start" });
  await a.signOut();
  await a.signIn(BOB);
  const bobs = a.session.access_token;
  release();
  const outcome = await call;
  assert.equal(a.session.access_token, bobs, "Bob's session stays");
  assert.equal(a.user.email, BOB.email);
  assert.equal(JSON.parse(w.storage.getItem(w.storageKey)).access_token, bobs);
  assert.ok(outcome === "ok" || outcome instanceof AuthExpiredError, String(outcome));
});
