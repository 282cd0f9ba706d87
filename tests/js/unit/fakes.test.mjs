// The fakes themselves: a test that leans on a lock that is not exclusive proves nothing.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createLockManager, createStorage, settle, tokenLeaks, track } from "./fakes.mjs";

test("the fake lock manager grants one holder at a time, in order", async () => {
  const locks = createLockManager();
  let inside = 0;
  let most = 0;
  const order = [];
  const hold = (i) =>
    locks.request("L", {}, async () => {
      inside += 1;
      most = Math.max(most, inside);
      order.push(i);
      await settle(1);
      inside -= 1;
      return i;
    });
  assert.deepEqual(await Promise.all([0, 1, 2, 3].map(hold)), [0, 1, 2, 3]);
  assert.equal(most, 1);
  assert.deepEqual(order, [0, 1, 2, 3]);
  assert.equal(locks.held("L"), false);
});

test("the fake lock manager: abort while waiting rejects with AbortError, abort after the grant does nothing", async () => {
  const locks = createLockManager();
  locks.holdForever("L");
  const controller = new AbortController();
  const waiting = track(locks.request("L", { signal: controller.signal }, () => "never"));
  await settle();
  assert.equal(waiting.settled, false);
  controller.abort();
  await waiting.promise;
  assert.equal(waiting.error.name, "AbortError");
  assert.ok(waiting.error instanceof DOMException);

  const late = new AbortController();
  const granted = await locks.request("M", { signal: late.signal }, async () => {
    late.abort();
    await settle(1);
    return "kept";
  });
  assert.equal(granted, "kept");
  await assert.rejects(locks.request("M", { signal: late.signal }, () => "never"), { name: "AbortError" });
});

test("the fake lock manager skips a waiter aborted during a delayed hand-over", async () => {
  const locks = createLockManager({ grantDelay: 5 });
  let release;
  const first = locks.request("L", () => new Promise((resolve) => (release = resolve)));
  await settle(10);
  const controller = new AbortController();
  const aborted = track(locks.request("L", { signal: controller.signal }, () => "never"));
  const next = locks.request("L", () => "next");
  release();
  await new Promise((resolve) => setImmediate(resolve)); // released; the hand-over is under way
  controller.abort();
  assert.equal(await next, "next");
  await first;
  await aborted.promise;
  assert.equal(aborted.error.name, "AbortError");
});

test("the fake storage keeps strings and can be made to throw", () => {
  const storage = createStorage();
  storage.setItem("k", { a: 1 });
  assert.equal(storage.getItem("k"), "[object Object]");
  storage.removeItem("k");
  assert.equal(storage.getItem("k"), null);
  storage.readsThrow = true;
  assert.throws(() => storage.getItem("k"), { name: "SecurityError" });
  storage.writesThrow = true;
  assert.throws(() => storage.setItem("k", "v"), { name: "QuotaExceededError" });
});

test("the token-leak check finds a token anywhere in a log call", () => {
  const tokens = new Set(["at-secret"]);
  assert.equal(tokenLeaks([{ level: "debug", args: ["fine", { nested: { deep: ["at-secret"] } }] }], tokens).length, 1);
  assert.equal(tokenLeaks([{ level: "warn", args: [new Error("bad at-secret")] }], tokens).length, 1);
  assert.equal(tokenLeaks([{ level: "warn", args: ["nothing here", { fp: "1a2b3c4d" }] }], tokens).length, 0);
});
