// api.download and api.json: what they return and how non-2xx answers surface; fingerprint.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, fingerprint, normalizeSession } from "../../../src/sessionkeeper/web/sessionkeeper.js";
import { noTokenInLogs, signedIn } from "./fakes.mjs";

test("download: the Blob and the filename from Content-Disposition", async (t) => {
  const { tab } = await signedIn(t);
  const { blob, filename } = await tab.download("/export.csv");
  assert.ok(blob instanceof Blob);
  assert.equal(blob.type, "text/csv");
  assert.equal(await blob.text(), "id,name\n1,Ann\n");
  assert.equal(filename, "contacts.csv");
});

test("download: filename* (RFC 5987) wins over filename; an explicit filename wins over both", async (t) => {
  const { tab } = await signedIn(t);
  assert.equal((await tab.download("/report")).filename, "résumé.pdf");
  assert.equal((await tab.download("/report", { filename: "mine.pdf" })).filename, "mine.pdf");
});

test("download: recovers from a 401 like any call (one refresh, one retry)", async (t) => {
  const { w, seeded, tab } = await signedIn(t);
  w.api.refuse(seeded.access_token);
  const { filename } = await tab.download("/export.csv");
  assert.equal(filename, "contacts.csv");
  assert.equal(w.auth.refreshes, 1);
  assert.equal(w.api.sends.length, 2);
});

test("fetch: a stream body cannot be replayed: the 401 comes back as it came, not a TypeError", async (t) => {
  const { w, seeded } = await signedIn(t);
  // A fetch that reads the body as a browser's does: a stream can be read once.
  const reading = async (url, init) => {
    if (init.body instanceof ReadableStream) await new Response(init.body).text();
    return w.api.fetch(url, init);
  };
  const tab = await w.tab({ fetch: reading });
  w.api.refuse(seeded.access_token);
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("row 1"));
      controller.close();
    },
  });
  const response = await tab.fetch("/upload", { method: "POST", body, duplex: "half" });
  assert.equal(response.status, 401);
  assert.deepEqual(await response.json(), { error: "invalid_token" });
  assert.equal(w.api.sends.length, 1);
  // A replayable body still gets its one refresh and one retry.
  assert.equal((await tab.fetch("/upload", { method: "POST", body: "row 1" })).status, 200);
  assert.equal(w.api.sends.length, 3);
});

test("download and json: a non-2xx answer is an ApiError with status and parsed body", async (t) => {
  const { tab } = await signedIn(t);
  for (const call of [() => tab.download("/missing"), () => tab.json("/missing")]) {
    await assert.rejects(call(), (error) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 404);
      assert.deepEqual(error.body, { error: "no such report" });
      return true;
    });
  }
  assert.deepEqual(await tab.json("/items"), { path: "/api/items", user: "user-ann", method: "GET" });
});

test("fingerprint: 8 hex characters of SHA-256, never the token", async () => {
  const print = await fingerprint("at-some-token");
  assert.match(print, /^[0-9a-f]{8}$/);
  assert.notEqual(print, await fingerprint("at-other-token"));
  assert.equal(await fingerprint(""), "-");
});

test("normalizeSession: expiry from expires_in at receipt on the local clock, not the server's expires_at", () => {
  const body = { access_token: "a", refresh_token: "r", expires_in: 600, expires_at: 1 };
  const session = normalizeSession(body, 1_000_000_000);
  assert.equal(session.received_at, 1_000_000);
  assert.equal(session.expires_at_local, 1_000_600);
  assert.equal(normalizeSession({ ...session }, 5_000_000_000).expires_at_local, 1_000_600, "a stored session keeps its expiry");
  assert.equal(normalizeSession({ refresh_token: "r" }, 0), null);
});

noTokenInLogs();
