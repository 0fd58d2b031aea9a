// The operators' console: a static page over the admin endpoints of GUILD Coins.
//
// Sign-in: in production Firebase Auth (the Hosting site's /__/firebase/init.json gives
// the project's web config; the account needs the `admin` claim); on the local stack,
// which has no such file, a local sign-in that mints a local token (/_local/token).
// Every action sends an Idempotency-Key made once per request (the same request clicked
// twice sends the same key, so the work is done once) and shows the API's message when
// it is refused. Everything from the API is shown as text, never as HTML.
"use strict";

const state = { token: null, uid: null, mode: null, firebaseAuth: null };
const pendingKeys = new Map();

// Small helpers.

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (name === "text") node.textContent = value;
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

const qar = (dirhams) => (dirhams / 100).toLocaleString("en", { minimumFractionDigits: 0, maximumFractionDigits: 2 }) + " QAR";
const coins = (map) => Object.entries(map || {}).map(([tier, n]) => `${n}×${tier}`).join(" ") || "–";
const when = (text) => (text ? new Date(text).toLocaleString("en-GB", { timeZone: "Asia/Qatar" }) : "–");

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message || "";
  box.hidden = !message;
}

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    Object.assign(this, { status, code, details });
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  let key = null;
  if (method === "POST") {
    headers["Content-Type"] = "application/json";
    // One key per request: the same request sent again (a double click, a retry after a
    // lost answer) carries the same key, so the server does the work once.
    const request = JSON.stringify([path, body || {}]);
    if (!pendingKeys.has(request)) pendingKeys.set(request, crypto.randomUUID());
    key = pendingKeys.get(request);
    headers["Idempotency-Key"] = key;
  }
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = payload.error || {};
    if (response.status !== 503 && key) pendingKeys.forEach((value, name) => value === key && pendingKeys.delete(name));
    throw new ApiError(response.status, error.code, error.message || `HTTP ${response.status}`, error.details || {});
  }
  pendingKeys.forEach((value, name) => value === key && pendingKeys.delete(name));
  return payload;
}

// Runs an action from a button: disabled while it runs, the API's message on refusal.
async function act(button, work, after) {
  if (button.disabled) return;
  button.disabled = true;
  showError("");
  try {
    await work();
    if (after) await after();
  } catch (error) {
    showError(error instanceof ApiError ? `${error.message} (${error.code || error.status})` : String(error));
  } finally {
    button.disabled = false;
  }
}

function actionButton(label, work, { kind = "", after = route } = {}) {
  const button = el("button", { type: "button", class: kind, text: label });
  button.addEventListener("click", () => act(button, work, after));
  return button;
}

function table(headings, rows) {
  if (!rows.length) return el("p", { class: "empty", text: "Nothing here." });
  return el("table", {}, el("thead", {}, el("tr", {}, headings.map((h) => el("th", { text: h })))), el("tbody", {}, rows));
}

// Signing in.

async function start() {
  document.getElementById("sign-out").addEventListener("click", signOut);
  let config = null;
  try {
    const response = await fetch("/__/firebase/init.json");
    if (response.ok) config = await response.json();
  } catch (ignored) { /* not on Firebase Hosting */ }
  if (config && window.firebase) {
    state.mode = "firebase";
    firebase.initializeApp(config);
    state.firebaseAuth = firebase.auth();
    document.getElementById("sign-in-google").hidden = false;
    document.getElementById("google").addEventListener("click", () =>
      state.firebaseAuth.signInWithPopup(new firebase.auth.GoogleAuthProvider()).catch((error) => showError(error.message)));
    state.firebaseAuth.onIdTokenChanged(async (user) => {
      if (!user) return showSignIn();
      signedIn(user.uid, await user.getIdToken());
    });
  } else {
    state.mode = "local";
    document.getElementById("sign-in-local").hidden = false;
    document.getElementById("sign-in-local").addEventListener("submit", signInLocally);
    const saved = sessionStorage.getItem("coins-console");
    if (saved) {
      const { uid, token } = JSON.parse(saved);
      return signedIn(uid, token);
    }
  }
  showSignIn();
}

async function signInLocally(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/_local/token", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ uid: form.get("uid"), admin: form.get("admin") === "on" }),
  });
  if (!response.ok) return showError("The local stack did not mint a token.");
  const { token } = await response.json();
  sessionStorage.setItem("coins-console", JSON.stringify({ uid: form.get("uid"), token }));
  signedIn(form.get("uid"), token);
}

function claims(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch (ignored) {
    return {};
  }
}

function signedIn(uid, token) {
  Object.assign(state, { uid, token });
  document.getElementById("sign-in").hidden = true;
  document.getElementById("who").hidden = false;
  document.getElementById("who-name").textContent = uid;
  if (claims(token).admin !== true) {
    document.getElementById("nav").hidden = true;
    document.getElementById("page").replaceChildren(el("h2", { text: "Not an admin" }),
      el("p", { id: "not-admin", text: `The account ${uid} has no admin claim: this console is for GUILD's operators only. ` +
        "Ask an owner of the project to grant it, then sign in again." }));
    return;
  }
  document.getElementById("nav").hidden = false;
  if (!location.hash) location.hash = "#withdrawals";
  route();
}

function showSignIn() {
  document.getElementById("sign-in").hidden = false;
  document.getElementById("who").hidden = true;
  document.getElementById("nav").hidden = true;
  document.getElementById("page").replaceChildren();
}

async function signOut() {
  sessionStorage.removeItem("coins-console");
  Object.assign(state, { token: null, uid: null });
  if (state.firebaseAuth) await state.firebaseAuth.signOut();
  showSignIn();
}

// Pages.

const PAGES = { withdrawals, kyc, disputes, purchases, users, vault };

let routed = 0; // which navigation is the latest: a slower, older page must not replace it

async function route() {
  if (!state.token || claims(state.token).admin !== true) return;
  const mine = ++routed;
  const name = (location.hash || "#withdrawals").slice(1).split("/")[0];
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.getAttribute("href") === `#${name}`);
  const page = document.getElementById("page");
  try {
    const content = await (PAGES[name] || withdrawals)();
    if (mine === routed) page.replaceChildren(content);
  } catch (error) {
    if (mine !== routed) return;
    page.replaceChildren();
    showError(error instanceof ApiError ? `${error.message} (${error.code || error.status})` : String(error));
  }
}

async function withdrawals() {
  const { items } = await api("GET", "/api/coins/withdrawals/pending?limit=100");
  const rows = items.map((w) => {
    const destination = el("span", { text: Object.values(w.destination).join(" · ") });
    const reference = el("input", { placeholder: "transfer reference", "aria-label": "transfer reference" });
    const reason = el("input", { placeholder: "reason", "aria-label": "reason" });
    return el("tr", { "data-id": w.id },
      el("td", {}, el("div", { text: when(w.created_at) }), el("div", { class: "hint", text: w.user_id })),
      el("td", { class: "num" }, qar(w.amount_dirhams), w.large ? el("div", {}, el("span", { class: "tag large", text: "large" })) : null),
      el("td", {}, el("div", { text: w.method }), destination,
        el("div", {}, actionButton("Show destination", async () => {
          const full = await api("GET", `/api/coins/withdrawal/${w.id}`);
          destination.textContent = Object.entries(full.destination).map(([k, v]) => `${k}: ${v}`).join(" · ");
        }, { after: null }))),
      el("td", { text: w.status }),
      el("td", {}, el("div", { class: "actions" },
        w.status === "requested" ? actionButton("Approve", () => api("POST", `/api/coins/withdrawal/${w.id}/approve`, {}), { kind: "primary" }) : null,
        w.status === "approved" ? [reference, actionButton("Mark paid", () => {
          if (!reference.value.trim()) throw new Error("Give the bank transfer's reference.");
          return api("POST", `/api/coins/withdrawal/${w.id}/paid`, { payment_reference: reference.value.trim() });
        }, { kind: "primary" })] : null,
        reason, actionButton("Reject", () => {
          if (!reason.value.trim()) throw new Error("Give a reason: the user is told.");
          return api("POST", `/api/coins/withdrawal/${w.id}/reject`, { reason: reason.value.trim() });
        }, { kind: "danger" }))));
  });
  return el("section", {}, el("h2", { text: "Withdrawals to approve and pay" }),
    el("p", { class: "hint", text: "Oldest first. Approve, make the bank transfer, then mark it paid with its reference." }),
    table(["Requested", "Amount", "Destination", "Status", ""], rows));
}

async function kyc() {
  const { items } = await api("GET", "/api/admin/coins/kyc/pending?limit=100");
  const rows = items.map((s) => {
    const note = el("input", { placeholder: "note to the user", "aria-label": "note" });
    const decide = (status) => () => api("POST", `/api/admin/coins/kyc/${s.user_id}`, { status, note: note.value.trim() || null });
    return el("tr", { "data-id": s.user_id },
      el("td", {}, el("div", { text: s.full_name || "–" }), el("div", { class: "hint", text: s.user_id })),
      el("td", { text: s.qid_number || "–" }),
      el("td", {}, (s.document_urls || []).map((url, i) =>
        el("div", {}, el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: `document ${i + 1}` })))),
      el("td", { text: when(s.submitted_at) }),
      el("td", {}, el("div", { class: "actions" }, note,
        actionButton("Verify", decide("verified"), { kind: "primary" }),
        actionButton("Reject", () => {
          if (!note.value.trim()) throw new Error("Say why, so the user can submit again.");
          return decide("rejected")();
        }, { kind: "danger" }))));
  });
  return el("section", {}, el("h2", { text: "Identities to verify" }), table(["User", "QID", "Documents", "Submitted", ""], rows));
}

async function disputes() {
  const { items } = await api("GET", "/api/admin/coins/disputes?limit=100");
  const rows = items.map((e) => {
    const share = el("input", { type: "number", min: "0", step: "5", max: String(e.held_dirhams / 100), placeholder: "QAR",
      "aria-label": "freelancer's share in QAR" });
    const note = el("input", { placeholder: "note", "aria-label": "note" });
    return el("tr", { "data-id": e.id },
      el("td", {}, el("div", { text: `${e.job_id} · ${e.milestone}` }), el("div", { class: "hint", text: `since ${when(e.disputed_at)}` })),
      el("td", { class: "num", text: qar(e.held_dirhams) }),
      el("td", {}, el("div", { text: `Client ${e.client_id}` }), e.refund_reason ? el("div", { class: "hint", text: `asked a refund: ${e.refund_reason}` }) : null,
        el("div", { text: `Freelancer ${e.freelancer_id}` }), e.submission_note ? el("div", { class: "hint", text: `submitted: ${e.submission_note}` }) : null),
      el("td", {}, el("div", { text: `${e.dispute.role} ${e.dispute.by}: ${e.dispute.reason}` }),
        (e.dispute.evidence_urls || []).map((url, i) => el("div", {}, el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: `evidence ${i + 1}` })))),
      el("td", {}, el("div", { class: "actions" }, share, note, actionButton("Resolve", () => {
        const qarShare = Number(share.value);
        if (share.value === "" || !Number.isInteger(qarShare * 100)) throw new Error("Give the freelancer's share in QAR (0 refunds all).");
        if (!note.value.trim()) throw new Error("Give a note: both parties are told.");
        return api("POST", `/api/admin/coins/escrow/${e.id}/resolve`, { freelancer_dirhams: Math.round(qarShare * 100), note: note.value.trim() });
      }, { kind: "primary" }))));
  });
  return el("section", {}, el("h2", { text: "Disputes" }),
    el("p", { class: "hint", text: "Oldest first. The freelancer's share is paid minus its fee; the rest goes back to the client." }),
    table(["Job · milestone", "Held", "Parties", "Dispute", ""], rows));
}

const GATEWAYS = { fatora: "Fatora", sadad: "SADAD" };

async function purchases() {
  const { items } = await api("GET", "/api/admin/coins/purchases/review?limit=100");
  const rows = items.map((p) => {
    const note = el("input", { placeholder: "note", "aria-label": "note" });
    const decide = (action) => () => {
      if (!note.value.trim()) throw new Error("Give a note for the record.");
      return api("POST", `/api/admin/coins/purchase/${p.id}/resolve`, { action, note: note.value.trim() });
    };
    // A refund SADAD cannot make by API: the admin makes it in SADAD's panel, then records it.
    const byHand = p.refund && p.refund.status === "manual";
    const gateway = GATEWAYS[p.gateway] || p.gateway;
    return el("tr", { "data-id": p.id },
      el("td", {}, el("div", { text: p.id }), el("div", { class: "hint", text: p.user_id })),
      el("td", {}, el("div", { text: gateway }), el("div", { class: "hint mono", text: p.gateway_reference || "no reference yet" })),
      el("td", { class: "num", text: `${qar(p.price_dirhams)} for ${coins(p.coins)}` }),
      el("td", { text: `${p.status}: ${p.review_reason || ""}` }),
      el("td", {}, el("div", { class: "actions" }, note,
        ...(byHand
          ? [actionButton(`Refunded in ${gateway}`, decide("dismiss"), { kind: "primary" })]
          : [actionButton("Issue", decide("issue"), { kind: "primary" }), actionButton("Refund", decide("refund"), { kind: "danger" }),
            actionButton("Dismiss", decide("dismiss"))]))));
  });
  return el("section", {}, el("h2", { text: "Purchases in review" }),
    table(["Purchase", "Gateway · reference", "Price", "Why", ""], rows));
}

async function users() {
  const uid = decodeURIComponent((location.hash.split("/")[1] || ""));
  const input = el("input", { value: uid, placeholder: "uid", "aria-label": "uid" });
  const form = el("form", { class: "actions", on: { submit: (event) => { event.preventDefault(); location.hash = `#users/${encodeURIComponent(input.value.trim())}`; } } },
    input, el("button", { type: "submit", class: "primary", text: "Look up" }));
  const section = el("section", {}, el("h2", { text: "User lookup" }), form);
  if (!uid) return section;
  const user = await api("GET", `/api/admin/coins/users/${encodeURIComponent(uid)}`);
  const w = user.wallet;
  const hours = el("input", { type: "number", min: "1", max: "720", value: "24", "aria-label": "hours" });
  const reason = el("input", { placeholder: "reason", "aria-label": "reason" });
  section.append(
    el("div", { class: "cards" },
      el("div", { class: "card" }, "Balance", el("b", { text: qar(w.balance_dirhams) }), el("span", { class: "hint", text: coins(w.coins) })),
      el("div", { class: "card" }, "Held in withdrawals", el("b", { text: qar(w.held_dirhams) })),
      el("div", { class: "card" }, "KYC", el("b", { text: user.kyc.status }),
        el("span", { class: "hint", text: user.kyc.submission ? `${user.kyc.submission.full_name} · ${user.kyc.submission.qid_number}` : "" }))),
    el("h3", { text: "Limits" }),
    table(["Kind", "Used", "Limit"], Object.entries(user.limits).filter(([k]) => k !== "lifted_until").map(([kind, u]) =>
      el("tr", {}, el("td", { text: kind }), el("td", { text: `${u.used_count} · ${qar(u.used_dirhams)}` }),
        el("td", { text: `${u.count_max}${u.amount_max_dirhams ? " · " + qar(u.amount_max_dirhams) : ""} per ${u.window_seconds / 3600} h` })))),
    el("div", { class: "actions" }, el("span", { class: "hint", text: `lifted until ${when(user.limits.lifted_until)}` }), hours, reason,
      actionButton("Lift limits", () => api("POST", `/api/admin/coins/users/${encodeURIComponent(uid)}/limits`,
        { lift_hours: Number(hours.value), reason: reason.value.trim() }))),
    el("h3", { text: "Open holds" }),
    table(["Kind", "Id", "Amount", "Status"], [
      ...user.open_holds.withdrawals.map((x) => el("tr", {}, el("td", { text: "withdrawal" }), el("td", { text: x.id }), el("td", { class: "num", text: qar(x.amount_dirhams) }), el("td", { text: x.status }))),
      ...user.open_holds.escrows_as_client.map((x) => el("tr", {}, el("td", { text: "escrow" }), el("td", { text: x.id }), el("td", { class: "num", text: qar(x.held_dirhams) }), el("td", { text: x.status }))),
    ]),
    el("h3", { text: "Recent history" }),
    table(["When", "Type", "Amount", "Balance after"], user.history.map((h) =>
      el("tr", {}, el("td", { text: when(h.created_at) }), el("td", { text: h.type }), el("td", { class: "num", text: qar(h.amount_dirhams) }),
        el("td", { class: "num", text: qar(h.balance_after_dirhams) })))),
    el("h3", { text: "Escrows" }),
    table(["Id", "Job · milestone", "Role", "Amount", "Status"], user.escrows.map((e) =>
      el("tr", {}, el("td", { text: e.id }), el("td", { text: `${e.job_id} · ${e.milestone}` }), el("td", { text: e.client_id === uid ? "client" : "freelancer" }),
        el("td", { class: "num", text: qar(e.amount_dirhams) }), el("td", { text: e.status })))),
    el("h3", { text: "KYC history" }),
    table(["When", "Status", "By", "Note"], user.kyc.history.map((k) =>
      el("tr", {}, el("td", { text: when(k.at) }), el("td", { text: k.status }), el("td", { text: k.by || "" }), el("td", { text: k.note || "" })))));
  return section;
}

async function vault() {
  const v = await api("GET", "/api/admin/coins/vault");
  const canvas = el("canvas", { id: "daily", height: "90" });
  const report = el("div", {}, el("p", { class: "hint", text: "Reconciliation replays the whole ledger; it takes a few seconds per 10,000 entries." }));
  const section = el("section", {}, el("h2", { text: "Vault" }),
    el("div", { class: "cards" },
      el("div", { class: "card" }, "Coins outstanding", el("b", { text: qar(v.outstanding.dirhams) }), el("span", { class: "hint", text: coins(v.outstanding.coins) })),
      el("div", { class: "card" }, "In wallets", el("b", { text: qar(v.users.dirhams) })),
      el("div", { class: "card" }, "Held in escrows", el("b", { text: qar(v.held.escrow.dirhams) })),
      el("div", { class: "card" }, "Held for withdrawals", el("b", { text: qar(v.held.withdrawal.dirhams) })),
      el("div", { class: "card" }, "Fees earned", el("b", { text: qar(v.fees.dirhams) })),
      el("div", { class: "card" }, "Bought", el("b", { text: qar(v.issued_dirhams) })),
      el("div", { class: "card" }, "Adjusted by admins", el("b", { text: qar(v.adjusted_dirhams) })),
      el("div", { class: "card" }, "Cashed out or refunded", el("b", { text: qar(v.retired_dirhams) }))),
    el("h3", { text: "Last 90 days" }), canvas,
    el("h3", { text: "Reconciliation" }), report,
    actionButton("Run reconciliation", async () => {
      const r = await api("GET", "/api/admin/coins/reconciliation");
      const effects = r.pending_effects, outbox = r.pending_outbox;
      report.replaceChildren(...[
        el("p", { class: r.ok ? "ok" : "bad", text: r.ok ? "OK: every coin accounted for." : `${r.problems.length} problem(s)` }),
        el("p", { class: "hint", text: `${r.checked.entries} entries checked; ${effects.count} with effects still on their way (oldest ${effects.oldest_age_seconds} s).` }),
        el("p", { class: "hint", text: `${outbox.count} events not yet delivered to the app (oldest ${outbox.oldest_age_seconds} s); the repair delivers what no trigger did after 10 minutes.` }),
        r.ok ? null : el("pre", { text: JSON.stringify(r.problems.slice(0, 50), null, 2) }),
      ].filter(Boolean));
    }, { after: null }));
  requestAnimationFrame(() => {
    if (!window.Chart) return;
    new Chart(canvas, {
      type: "line",
      data: {
        labels: v.daily.map((d) => d.day.slice(5)),
        datasets: [
          { label: "issued (QAR)", data: v.daily.map((d) => d.issued_dirhams / 100), borderColor: "#1b7f3b" },
          { label: "retired (QAR)", data: v.daily.map((d) => d.retired_dirhams / 100), borderColor: "#a4161a" },
          { label: "fees (QAR)", data: v.daily.map((d) => d.fees_dirhams / 100), borderColor: "#14213d" },
        ],
      },
      options: { animation: false, plugins: { legend: { position: "bottom" } } },
    });
  });
  return section;
}

window.addEventListener("hashchange", route);
start();
