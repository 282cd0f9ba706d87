// Drives the unmodified @supabase/supabase-js client against a sessionkeeper server.
// Usage: node supabase_flow.mjs http://127.0.0.1:PORT
// Prints one JSON line of results; exits non-zero on the first failure.
import { createClient } from "@supabase/supabase-js";

const base = process.argv[2];
const email = `js-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
const password = "s3cret-passw0rd";
// Node 20 has no native WebSocket, which supabase-js's realtime module wants at construction.
// Realtime is never used here; hand it a placeholder only when the runtime lacks one.
const realtime = globalThis.WebSocket ? {} : { transport: class NoWebSocket {} };
const options = { auth: { persistSession: false, autoRefreshToken: false }, realtime };
const supabase = createClient(base, "anon-key-is-ignored", options);
const results = {};

function check(step, { data, error }) {
  if (error) {
    console.log(JSON.stringify({ failed: step, code: error.code, status: error.status, message: error.message }));
    process.exit(1);
  }
  return data;
}

let data = check("signUp", await supabase.auth.signUp({ email, password, options: { data: { plan: "free" } } }));
results.signUp = Boolean(data.session && data.user.email === email);

data = check("signInWithPassword", await supabase.auth.signInWithPassword({ email, password }));
results.signIn = Boolean(data.session && data.session.expires_in > 0);
const firstRefresh = data.session.refresh_token;

data = check("getUser", await supabase.auth.getUser());
results.getUser = data.user.email === email;

data = check("getClaims", await supabase.auth.getClaims());
results.getClaims = data.claims.email === email && data.header.alg === "ES256";

data = check("refreshSession", await supabase.auth.refreshSession());
results.refresh = data.session.refresh_token !== firstRefresh;
// A lost answer is repaired (rule 3): the first token, retried, gets its current child back.
const retried = await createClient(base, "anon", options).auth.refreshSession({ refresh_token: firstRefresh });
results.lostAnswerRepaired = retried.data.session?.refresh_token === data.session.refresh_token;
data = check("refreshSession 2", await supabase.auth.refreshSession());

data = check("updateUser", await supabase.auth.updateUser({ data: { plan: "pro" } }));
results.updateUser = data.user.user_metadata.plan === "pro";

// Wrong password: the client surfaces our error code.
const other = createClient(base, "anon", options);
const wrong = await other.auth.signInWithPassword({ email, password: "nope-nope" });
results.wrongPasswordCode = wrong.error && wrong.error.code;

// Replay of an old refresh token outside the reuse interval (server runs with --reuse-interval 0):
// the first token is now two generations old, so the whole family is revoked.
const replay = await other.auth.refreshSession({ refresh_token: firstRefresh });
results.replayCode = replay.error && replay.error.code;

check("signOut", await supabase.auth.signOut({ scope: "local" }));
const after = await supabase.auth.getSession();
results.signedOut = after.data.session === null;

console.log(JSON.stringify(results));
