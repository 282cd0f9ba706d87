// The demo app. Every call to /api goes through `api` (sessionkeeper.js): lists, views and CSV
// exports alike. Nothing here calls fetch, XMLHttpRequest or navigates to /api: a test fails if
// it does (tests/e2e/test_demo_sources.py).
import {
  AuthExpiredError,
  cookieSession,
  createApiClient,
  createAuthClient,
  NEEDS_REAUTH,
  REAUTHENTICATED,
  SIGNED_IN,
  SIGNED_OUT,
  TOKEN_REFRESHED,
} from "/sessionkeeper.js";

// The server says which transport it runs (`sessionkeeper demo --mode cookie`): in cookie mode the
// session lives in HttpOnly cookies set by the session bridge, and this page never sees a token.
const transport = document.querySelector('meta[name="sessionkeeper-transport"]')?.content === "cookie" ? "cookie" : "bearer";
const auth = transport === "cookie" ? cookieSession({ url: "/auth", authUrl: "/auth/v1" }) : createAuthClient({ url: "/auth/v1" });
const api = createApiClient({ baseUrl: "/api", tokens: auth });
document.body.dataset.transport = transport;
window.sessionkeeperDemo = { api }; // for the curious (and the end-to-end tests)

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];
const money = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP" });
const loaded = new Set();
const events = [];

// -- session state → which screen ------------------------------------------------------------

function showSignedIn() {
  $("#signin").hidden = true;
  $(".topbar").hidden = false;
  $("#app").hidden = false;
  $("#user-email").textContent = api.user?.email || "";
  route();
}

function showSignedOut() {
  loaded.clear();
  for (const body of $$(".grid tbody, .cards, #whoami")) body.replaceChildren();
  for (const panel of $$(".detail")) panel.hidden = true;
  $(".topbar").hidden = true;
  $("#app").hidden = true;
  $("#signin").hidden = false;
  $('#signin-form input[name="password"]').value = "";
  document.body.dataset.state = "signed-out";
}

api.on((event, detail) => {
  events.unshift({ at: new Date(), event, detail });
  events.length = Math.min(events.length, 30);
  renderEvents();
  if (event === SIGNED_OUT) showSignedOut();
  else if (event === SIGNED_IN && !detail.restored) showSignedIn();
  else if (event === REAUTHENTICATED) toast("Reconnected — your work is where you left it.");
  else if (event === NEEDS_REAUTH) document.body.dataset.state = "needs-reauth";
  if (event === TOKEN_REFRESHED || event === REAUTHENTICATED || event === SIGNED_IN) {
    document.body.dataset.state = "signed-in";
  }
  updatePill();
});

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const button = $('button[type="submit"]', form);
  button.disabled = true;
  $("#signin-error").textContent = "";
  try {
    await api.signIn({ email: form.email.value, password: form.password.value });
  } catch (error) {
    $("#signin-error").textContent = error.code === "invalid_credentials" ? "Wrong email or password." : `Could not sign in: ${error.message}`;
  } finally {
    button.disabled = false;
  }
});

$("#sign-out").addEventListener("click", () => api.signOut());

// -- pages ------------------------------------------------------------------------------------

const PAGES = {
  jobs: {
    row: (job) => [job.id, job.title, job.customer, badge(job.status), job.due, { text: money.format(job.value), num: true }],
    filterText: (job) => `${job.id} ${job.title} ${job.customer} ${job.contact} ${job.status}`,
    detail: (job) => [
      ["Job", job.id], ["Title", job.title], ["Customer", job.customer], ["Contact", job.contact],
      ["Status", job.status], ["Due", job.due], ["Value", money.format(job.value)],
    ],
  },
  contacts: {
    row: (c) => [c.name, c.company, c.email, c.city],
    filterText: (c) => `${c.name} ${c.company} ${c.email} ${c.city}`,
    detail: (c) => [["Name", c.name], ["Company", c.company], ["Email", c.email], ["Phone", c.phone], ["City", c.city]],
  },
};

function route() {
  if (api.state === "signed_out") return;
  const name = (location.hash.replace(/^#\/?/, "") || "jobs").split("/")[0];
  const page = $(`.page[data-page="${name}"]`) ? name : "jobs";
  for (const section of $$(".page")) section.hidden = section.dataset.page !== page;
  for (const link of $$("[data-nav]")) link.classList.toggle("active", link.dataset.nav === page);
  document.body.dataset.page = page;
  if (!loaded.has(page)) load(page);
}

async function load(page) {
  loaded.add(page);
  const section = $(`.page[data-page="${page}"]`);
  try {
    if (page === "session") return await showWhoami(section);
    const { items } = await api.json(`/${page}`);
    $("[data-count]", section).textContent = items.length;
    if (page === "reports") renderReports(section, items);
    else renderTable(section, page, items);
  } catch (error) {
    loaded.delete(page);
    failed(error, `load ${page}`);
  }
}

function renderTable(section, page, items) {
  const spec = PAGES[page];
  const body = $("tbody", section);
  body.replaceChildren(
    ...items.map((item) => {
      const tr = document.createElement("tr");
      tr.dataset.filter = spec.filterText(item).toLowerCase();
      for (const cell of spec.row(item)) {
        const td = document.createElement("td");
        if (cell instanceof Node) td.append(cell);
        else if (cell && typeof cell === "object") {
          td.textContent = cell.text;
          td.className = "num";
        } else td.textContent = cell;
        tr.append(td);
      }
      const td = document.createElement("td");
      td.append(button("View", "view", `/${page}/${encodeURIComponent(item.id)}`));
      tr.append(td);
      return tr;
    }),
  );
  applyFilter(section);
}

function renderReports(section, reports) {
  $(".cards", section).replaceChildren(
    ...reports.map((report) => {
      const card = document.createElement("article");
      card.className = "card report";
      const title = document.createElement("h3");
      title.textContent = report.name;
      const period = document.createElement("p");
      period.className = "muted";
      period.textContent = `${report.id} · ${report.period}`;
      const actions = document.createElement("div");
      actions.className = "actions";
      actions.append(
        button("View", "view", `/reports/${encodeURIComponent(report.id)}`),
        button("Export CSV", "export", `/reports/${encodeURIComponent(report.id)}/export.csv`, `report-${report.id}.csv`),
      );
      card.append(title, period, actions);
      return card;
    }),
  );
}

function button(label, action, path, filename) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = action === "view" ? "btn small ghost" : "btn small";
  b.textContent = label;
  b.dataset.action = action;
  b.dataset.path = path;
  if (filename) b.dataset.filename = filename;
  return b;
}

function badge(status) {
  const span = document.createElement("span");
  span.className = `badge s-${status.replace(/\s+/g, "-")}`;
  span.textContent = status;
  return span;
}

// -- actions: view and export, all through the api client ------------------------------------

document.addEventListener("click", async (event) => {
  const target = event.target.closest("[data-action]");
  if (!target) return;
  const { action, path, filename } = target.dataset;
  const section = target.closest(".page");
  target.classList.add("busy");
  try {
    if (action === "export") {
      const { blob } = await api.download(path, { filename });
      toast(`Downloaded ${filename} (${blob.size.toLocaleString()} bytes)`);
    } else if (path === "/debug/whoami") {
      await showWhoami(section);
    } else {
      showDetail(section, path, await api.json(path));
    }
  } catch (error) {
    failed(error, action);
  } finally {
    target.classList.remove("busy");
  }
});

function showDetail(section, path, item) {
  const panel = $(".detail", section);
  const page = section.dataset.page;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "close";
  close.setAttribute("aria-label", "Close");
  close.textContent = "×";
  close.addEventListener("click", () => {
    panel.hidden = true;
  });
  const title = document.createElement("h2");
  title.textContent = item.name || item.title || item.id;
  const body = document.createElement("div");
  if (page === "reports") body.append(bars(item.rows));
  else {
    const dl = document.createElement("dl");
    for (const [key, value] of PAGES[page].detail(item)) {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dl.append(dt, dd);
    }
    body.append(dl);
  }
  panel.replaceChildren(close, title, body);
  panel.dataset.item = item.id;
  panel.hidden = false;
}

function bars(rows) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  const list = document.createElement("ul");
  list.className = "bars";
  for (const row of rows) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = row.label;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${Math.round((row.value / max) * 100)}%`;
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "num";
    value.textContent = row.value > 100 ? money.format(row.value) : row.value;
    li.append(label, bar, value);
    list.append(li);
  }
  return list;
}

async function showWhoami(section) {
  const me = await api.json("/debug/whoami");
  const facts = [
    ["User", `${me.email} (${me.user_id})`], ["Session", me.session_id], ["Role", me.role],
    ["Issuer", me.issuer], ["Algorithm / key", `${me.alg} / ${me.kid}`], ["Transport", me.transport],
    ["Expires", `${me.expires_at_iso} (${Math.round(me.seconds_left)} s left)`],
  ];
  const dl = $("#whoami", section);
  dl.replaceChildren(
    ...facts.flatMap(([key, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }),
  );
}

function renderEvents() {
  const list = $("#events");
  list.replaceChildren(
    ...events.map(({ at, event, detail }) => {
      const li = document.createElement("li");
      const why = detail?.reason || detail?.why || "";
      li.textContent = `${at.toLocaleTimeString()}  ${event}${why ? ` — ${why}` : ""}`;
      return li;
    }),
  );
}

// -- filter (page state the banner must never clear) ----------------------------------------

document.addEventListener("input", (event) => {
  if (event.target.matches("[data-filter]")) applyFilter(event.target.closest(".page"));
});

function applyFilter(section) {
  const input = $("[data-filter]", section);
  const needle = input ? input.value.trim().toLowerCase() : "";
  for (const tr of $$("tbody tr", section)) tr.hidden = Boolean(needle) && !tr.dataset.filter.includes(needle);
}

// -- feedback -------------------------------------------------------------------------------

function failed(error, what) {
  if (error instanceof AuthExpiredError) return; // the banner (or the sign-in page) says it
  toast(`Could not ${what}: ${error.message}`, true);
}

function toast(text, bad = false) {
  const div = document.createElement("div");
  div.className = bad ? "toast bad" : "toast";
  div.textContent = text;
  $("#toasts").append(div);
  setTimeout(() => div.remove(), 4000);
}

function updatePill() {
  const pill = $("#token-pill");
  const session = api.session;
  if (!session || api.state === "signed_out") return;
  const left = Math.max(0, Math.round(session.expires_at_local - Date.now() / 1000));
  pill.textContent = api.state === "needs_reauth" ? "session ended" : `token ${left}s · ${api.stats.refreshes} refreshes`;
  pill.classList.toggle("warn", api.state === "needs_reauth");
}

window.addEventListener("hashchange", route);
setInterval(updatePill, 1000);

await api.ready;
if (api.state === "signed_out") showSignedOut();
else {
  document.body.dataset.state = "signed-in";
  showSignedIn();
}
