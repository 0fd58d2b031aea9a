// The operators' console: a static page over the admin endpoints of GUILD Coins.
//
// Sign-in: in production Firebase Auth (the Hosting site's /__/firebase/init.json gives
// the project's web config; the account needs the `admin` claim); on the local stack,
// which has no such file, a local sign-in that mints a local token (/_local/token).
// Every action sends an Idempotency-Key made once per request (the same request clicked
// twice sends the same key, so the work is done once), says what it did when it is done
// and shows the API's message, and the fields it names, when it is refused. Queues and
// lists are read page by page through next_cursor. Everything from the API is shown as
// text, never as HTML. Amounts are QAR with two decimals; times are Qatar's, and say so.
"use strict";

const state = { token: null, uid: null, mode: null, firebaseAuth: null };
const pendingKeys = new Map();
const PAGE_SIZE = 100; // the API's largest page
const USERS_PAGE_SIZE = 50;

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

const qar = (dirhams) => (dirhams / 100).toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + " QAR";
const coins = (map) => Object.entries(map || {}).map(([tier, n]) => `${n}×${tier}`).join(" ") || "–";

const QATAR = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Asia/Qatar", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});

// "2026-12-01 15:04 Asia/Qatar": the API's UTC times in the zone the admins work in, named.
function when(text) {
  if (!text) return "–";
  const part = Object.fromEntries(QATAR.formatToParts(new Date(text)).map(({ type, value }) => [type, value]));
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute} Asia/Qatar`;
}

const userLink = (uid) => el("a", { href: `#users/${encodeURIComponent(uid)}`, class: "user", text: uid });

// An input with its visible label: what it asks for, and in which unit.
const labelled = (text, input) => el("label", { class: "field" }, el("span", { text }), input);

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    Object.assign(this, { status, code, details });
  }
}

// A refusal: the API's message, and for invalid fields which field and why.
function showError(error) {
  const box = document.getElementById("error");
  box.replaceChildren();
  box.hidden = !error;
  if (!error) return;
  if (!(error instanceof ApiError)) return box.append(error instanceof Error ? error.message : String(error));
  box.append(`${error.message} (${error.code || error.status})`);
  const fields = error.details.fields || [];
  if (fields.length) box.append(el("ul", {}, fields.map((f) => el("li", {}, el("b", { text: f.field }), `: ${f.message}`))));
}

// What an action did, until the next action or page.
function showNotice(message) {
  const box = document.getElementById("notice");
  box.textContent = message || "";
  box.hidden = !message;
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

// Runs an action from a button: disabled while it runs; `work` answers what it did, which
// is shown (and stays while `after` runs); a refusal shows instead.
async function act(button, work, after) {
  if (button.disabled) return;
  button.disabled = true;
  showError("");
  showNotice("");
  try {
    showNotice(await work());
    if (after) await after();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
}

// A button that acts; with `confirm`, a first click only asks (in the page), and the
// action runs on "Yes".
function actionButton(label, work, { kind = "", after = counts, confirm = null } = {}) {
  const button = el("button", { type: "button", class: kind, text: label });
  if (!confirm) {
    button.addEventListener("click", () => act(button, work, after));
    return button;
  }
  const yes = el("button", { type: "button", class: kind, text: `Yes, ${label.toLowerCase()}` });
  const no = el("button", { type: "button", text: "Cancel" });
  const ask = el("span", { class: "confirm", role: "group", hidden: true }, el("span", { text: confirm }), yes, no);
  const asking = (shown) => { ask.hidden = !shown; button.hidden = shown; };
  button.addEventListener("click", () => asking(true));
  no.addEventListener("click", () => asking(false));
  yes.addEventListener("click", () => act(yes, work, async () => { asking(false); if (after) await after(); }));
  return el("span", { class: "actions" }, button, ask);
}

function table(headings, rows) {
  if (!rows.length) return el("p", { class: "empty", text: "Nothing here." });
  return el("table", {}, el("thead", {}, el("tr", {}, headings.map((h) => el("th", { text: h })))), el("tbody", {}, rows));
}

// A queue or list read page by page: the first page, then "More" reads the next through
// next_cursor and adds its rows below. `path` has its query already (limit=...).
async function paged(path, rowOf, headings) {
  const body = el("tbody");
  const more = el("button", { type: "button", class: "more", text: "More" });
  let cursor = null;
  const load = async () => {
    const page = await api("GET", cursor ? `${path}&cursor=${encodeURIComponent(cursor)}` : path);
    body.append(...page.items.map(rowOf));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  };
  more.addEventListener("click", () => act(more, load, null));
  await load();
  if (!body.children.length) return el("p", { class: "empty", text: "Nothing here." });
  return el("div", {}, el("table", {}, el("thead", {}, el("tr", {}, headings.map((h) => el("th", { text: h })))), body), more);
}

// How many wait in each queue: in the nav and beside each queue's title.
let waiting = {};

async function counts() {
  try {
    waiting = await api("GET", "/api/admin/coins/queues");
  } catch (ignored) {
    return; // the counts are a help: a page works without them
  }
  paintCounts();
}

function paintCounts() {
  for (const tag of document.querySelectorAll("[data-queue]")) {
    const n = waiting[tag.dataset.queue];
    tag.textContent = n === undefined ? "" : tag.classList.contains("waiting") ? `${n} waiting` : String(n);
  }
}

const title = (text, queue) => el("h2", {}, text, " ", el("span", { class: "waiting", "data-queue": queue }));

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
  const name = (location.hash || "#withdrawals").slice(1).split(/[/?]/)[0];
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.getAttribute("href") === `#${name}`);
  const page = document.getElementById("page");
  counts();
  try {
    const content = await (PAGES[name] || withdrawals)();
    if (mine !== routed) return;
    page.replaceChildren(content);
    paintCounts();
  } catch (error) {
    if (mine !== routed) return;
    page.replaceChildren();
    showError(error);
  }
}

async function withdrawals() {
  return el("section", {}, title("Withdrawals to approve and pay", "withdrawals"),
    el("p", { class: "hint", text: "Oldest first. Approve, make the bank transfer, then mark it paid with its reference." }),
    await paged(`/api/coins/withdrawals/pending?limit=${PAGE_SIZE}`, withdrawalRow, ["Requested", "Amount", "Destination", "Status", ""]));
}

function withdrawalRow(w) {
  const amount = qar(w.amount_dirhams);
  const destination = el("span", { text: Object.values(w.destination).join(" · ") });
  const reference = el("input", { name: "reference" });
  const reason = el("input", { name: "reason" });
  // The withdrawal as the API answered: while it is open its row stays, up to date.
  const settle = (updated) => (["requested", "approved"].includes(updated.status) ? row.replaceWith(withdrawalRow(updated)) : row.remove());
  const approve = actionButton("Approve", async () => {
    settle(await api("POST", `/api/coins/withdrawal/${w.id}/approve`, {}));
    return `Approved ${w.user_id}'s withdrawal of ${amount}: make the transfer, then mark it paid.`;
  }, { kind: "primary", confirm: w.large ? `${amount} is at or above the large mark. Approve it?` : null });
  const pay = actionButton("Mark paid", async () => {
    const paymentReference = reference.value.trim();
    if (!paymentReference) throw new Error("Give the bank transfer's reference.");
    settle(await api("POST", `/api/coins/withdrawal/${w.id}/paid`, { payment_reference: paymentReference }));
    return `Paid ${w.user_id} ${amount}, reference ${paymentReference}.`;
  }, { kind: "primary" });
  const reject = actionButton("Reject", async () => {
    const why = reason.value.trim();
    if (!why) throw new Error("Give a reason: the user is told.");
    settle(await api("POST", `/api/coins/withdrawal/${w.id}/reject`, { reason: why }));
    return `Rejected ${w.user_id}'s withdrawal of ${amount} (${why}); the coins are back in their wallet.`;
  }, { kind: "danger" });
  const row = el("tr", { "data-id": w.id },
    el("td", {}, el("div", { text: when(w.created_at) }), el("div", { class: "hint" }, userLink(w.user_id)),
      ...Object.values(w.signals || {}).map((s) => el("div", { class: "signal" }, el("span", { class: `tag ${s.level}`, text: s.level }), ` ${s.why}, since ${when(s.since)}`))),
    el("td", { class: "num" }, amount, w.large ? el("div", {}, el("span", { class: "tag large", text: "large" })) : null),
    el("td", {}, el("div", { text: w.method }), destination,
      el("div", {}, actionButton("Show destination", async () => {
        const full = await api("GET", `/api/coins/withdrawal/${w.id}`);
        destination.textContent = Object.entries(full.destination).map(([k, v]) => `${k}: ${v}`).join(" · ");
      }, { after: null }))),
    el("td", { text: w.status }),
    el("td", {}, el("div", { class: "actions" },
      w.status === "requested" ? approve : null,
      w.status === "approved" ? [labelled("Transfer reference", reference), pay] : null,
      labelled("Reason for rejecting", reason), reject)));
  return row;
}

async function kyc() {
  return el("section", {}, title("Identities to verify", "kyc"),
    await paged(`/api/admin/coins/kyc/pending?limit=${PAGE_SIZE}`, kycRow, ["User", "QID", "Documents", "Submitted", ""]));
}

function kycRow(s) {
  const note = el("input", { name: "note" });
  const decide = async (status) => {
    await api("POST", `/api/admin/coins/kyc/${s.user_id}`, { status, note: note.value.trim() || null });
    row.remove();
  };
  const row = el("tr", { "data-id": s.user_id },
    el("td", {}, el("div", { text: s.full_name || "–" }), el("div", { class: "hint" }, userLink(s.user_id))),
    el("td", { text: s.qid_number || "–" }),
    el("td", {}, (s.document_urls || []).map((url, i) =>
      el("div", {}, el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: `document ${i + 1}` })))),
    el("td", { text: when(s.submitted_at) }),
    el("td", {}, el("div", { class: "actions" }, labelled("Note to the user", note),
      actionButton("Verify", async () => {
        await decide("verified");
        return `Verified ${s.user_id}'s identity.`;
      }, { kind: "primary" }),
      actionButton("Reject", async () => {
        if (!note.value.trim()) throw new Error("Say why, so the user can submit again.");
        await decide("rejected");
        return `Rejected ${s.user_id}'s identity documents; they are told why.`;
      }, { kind: "danger" }))));
  return row;
}

async function disputes() {
  return el("section", {}, title("Disputes", "disputes"),
    el("p", { class: "hint", text: "Oldest first. The freelancer's share is paid minus its fee; the rest goes back to the client." }),
    await paged(`/api/admin/coins/disputes?limit=${PAGE_SIZE}`, disputeRow, ["Job · milestone", "Held", "Parties", "Dispute", ""]));
}

function disputeRow(e) {
  const share = el("input", { type: "number", min: "0", step: "5", max: String(e.held_dirhams / 100), name: "share" });
  const note = el("input", { name: "note" });
  const row = el("tr", { "data-id": e.id },
    el("td", {}, el("div", { text: `${e.job_id} · ${e.milestone}` }), el("div", { class: "hint", text: `since ${when(e.disputed_at)}` })),
    el("td", { class: "num", text: qar(e.held_dirhams) }),
    el("td", {}, el("div", {}, "Client ", userLink(e.client_id)), e.refund_reason ? el("div", { class: "hint", text: `asked a refund: ${e.refund_reason}` }) : null,
      el("div", {}, "Freelancer ", userLink(e.freelancer_id)), e.submission_note ? el("div", { class: "hint", text: `submitted: ${e.submission_note}` }) : null),
    el("td", {}, el("div", {}, `${e.dispute.role} `, userLink(e.dispute.by), `: ${e.dispute.reason}`),
      (e.dispute.evidence_urls || []).map((url, i) => el("div", {}, el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: `evidence ${i + 1}` })))),
    el("td", {}, el("div", { class: "actions" }, labelled("Freelancer's share (QAR)", share), labelled("Note to both parties", note),
      actionButton("Resolve", async () => {
        const qarShare = Number(share.value);
        if (share.value === "" || !Number.isInteger(qarShare * 100)) throw new Error("Give the freelancer's share in QAR (0 refunds all).");
        if (!note.value.trim()) throw new Error("Give a note: both parties are told.");
        const resolved = await api("POST", `/api/admin/coins/escrow/${e.id}/resolve`, { freelancer_dirhams: Math.round(qarShare * 100), note: note.value.trim() });
        row.remove();
        return `Resolved the dispute on ${e.job_id} · ${e.milestone}: ${qar(resolved.released_dirhams)} to ${e.freelancer_id} (before the fee), ` +
          `${qar(resolved.refunded_dirhams)} back to ${e.client_id}.`;
      }, { kind: "primary" }))));
  return row;
}

const GATEWAYS = { fatora: "Fatora", sadad: "SADAD" };

async function purchases() {
  return el("section", {}, title("Purchases in review", "purchases"),
    await paged(`/api/admin/coins/purchases/review?limit=${PAGE_SIZE}`, purchaseRow, ["Purchase", "Gateway · reference", "Price", "Why", ""]));
}

function purchaseRow(p) {
  const note = el("input", { name: "note" });
  const gateway = GATEWAYS[p.gateway] || p.gateway;
  const price = qar(p.price_dirhams);
  const decide = (action, done) => async () => {
    if (!note.value.trim()) throw new Error("Give a note for the record.");
    const updated = await api("POST", `/api/admin/coins/purchase/${p.id}/resolve`, { action, note: note.value.trim() });
    if (updated.needs_review) row.replaceWith(purchaseRow(updated));
    else row.remove();
    return updated.needs_review ? `${gateway} refunds this purchase by hand: refund ${price} in its panel, then record it here.` : done;
  };
  // A refund SADAD cannot make by API: the admin makes it in SADAD's panel, then records it.
  const byHand = p.refund && p.refund.status === "manual";
  const row = el("tr", { "data-id": p.id },
    el("td", {}, el("div", { text: p.id }), el("div", { class: "hint" }, userLink(p.user_id))),
    el("td", {}, el("div", { text: gateway }), el("div", { class: "hint mono", text: p.gateway_reference || "no reference yet" })),
    el("td", { class: "num", text: `${price} for ${coins(p.coins)}` }),
    el("td", { text: `${p.status}: ${p.review_reason || ""}` }),
    el("td", {}, el("div", { class: "actions" }, labelled("Note for the record", note),
      ...(byHand
        ? [actionButton(`Refunded in ${gateway}`, decide("dismiss", `Recorded the refund of ${price} to ${p.user_id} made in ${gateway}.`), { kind: "primary" })]
        : [actionButton("Issue", decide("issue", `Issued ${coins(p.coins)} to ${p.user_id} for purchase ${p.id}.`), { kind: "primary" }),
          actionButton("Refund", decide("refund", `Refunded ${price} to ${p.user_id} for purchase ${p.id}.`), { kind: "danger" }),
          actionButton("Dismiss", decide("dismiss", `Dismissed purchase ${p.id} of ${p.user_id}.`))]))));
  return row;
}

async function users() {
  const [where, query = ""] = location.hash.split("?");
  const uid = decodeURIComponent(where.split("/")[1] || "");
  const prefix = new URLSearchParams(query).get("prefix") || "";
  const input = el("input", { value: prefix || uid, name: "prefix", autocomplete: "off" });
  const form = el("form", { class: "actions", on: { submit: (event) => {
    event.preventDefault();
    const wanted = input.value.trim();
    location.hash = wanted ? `#users?prefix=${encodeURIComponent(wanted)}` : "#users";
  } } }, labelled("uid, or how it begins", input), el("button", { type: "submit", class: "primary", text: "Search" }));
  const section = el("section", {}, el("h2", { text: "Users" }), form);
  if (!uid) {
    const path = `/api/admin/coins/users?limit=${USERS_PAGE_SIZE}` + (prefix ? `&prefix=${encodeURIComponent(prefix)}` : "");
    section.append(el("h3", { text: prefix ? `Users whose uid begins with ${prefix}` : "Recently active" }),
      await paged(path, (w) => el("tr", { "data-id": w.user_id }, el("td", {}, userLink(w.user_id)),
        el("td", { class: "num", text: qar(w.balance_dirhams) }), el("td", { class: "num", text: qar(w.held_dirhams) }),
        el("td", { text: w.kyc_status }), el("td", { text: when(w.updated_at) })), ["User", "Balance", "Held", "KYC", "Last change"]));
    return section;
  }
  const user = await api("GET", `/api/admin/coins/users/${encodeURIComponent(uid)}`);
  const w = user.wallet;
  const hours = el("input", { type: "number", min: "1", max: "720", value: "24", name: "hours" });
  const reason = el("input", { name: "reason" });
  section.append(
    el("h3", { text: uid }),
    el("div", { class: "cards" },
      el("div", { class: "card" }, "Balance", el("b", { text: qar(w.balance_dirhams) }), el("span", { class: "hint", text: coins(w.coins) })),
      el("div", { class: "card" }, "Held in withdrawals", el("b", { text: qar(w.held_dirhams) })),
      el("div", { class: "card" }, "KYC", el("b", { text: user.kyc.status }),
        el("span", { class: "hint", text: user.kyc.submission ? `${user.kyc.submission.full_name} · ${user.kyc.submission.qid_number}` : "" }))),
    Object.keys(user.signals).length
      ? el("div", { class: "signals" }, el("h3", { text: "Unusual activity (informs, blocks nothing)" }),
        ...Object.values(user.signals).map((s) => el("p", {}, el("span", { class: `tag ${s.level}`, text: s.level }), ` ${s.why}, since ${when(s.since)}`)))
      : null,
    el("h3", { text: "Limits" }),
    table(["Kind", "Used", "Limit"], Object.entries(user.limits).filter(([k]) => k !== "lifted_until").map(([kind, u]) =>
      el("tr", {}, el("td", { text: kind }), el("td", { text: `${u.used_count} · ${qar(u.used_dirhams)}` }),
        el("td", { text: `${u.count_max}${u.amount_max_dirhams ? " · " + qar(u.amount_max_dirhams) : ""} per ${u.window_seconds / 3600} h` })))),
    el("div", { class: "actions" }, el("span", { class: "hint", text: `lifted until ${when(user.limits.lifted_until)}` }),
      labelled("Lift for (hours, 1 to 720)", hours), labelled("Reason, for the audit", reason),
      actionButton("Lift limits", async () => {
        const lifted = await api("POST", `/api/admin/coins/users/${encodeURIComponent(uid)}/limits`,
          { lift_hours: Number(hours.value), reason: reason.value.trim() });
        return `Lifted ${uid}'s limits until ${when(lifted.lifted_until)}.`;
      }, { after: route })),
    el("h3", { text: "Open holds" }),
    table(["Kind", "Id", "Amount", "Status"], [
      ...user.open_holds.withdrawals.map((x) => el("tr", {}, el("td", { text: "withdrawal" }), el("td", { text: x.id }), el("td", { class: "num", text: qar(x.amount_dirhams) }), el("td", { text: x.status }))),
      ...user.open_holds.escrows_as_client.map((x) => el("tr", {}, el("td", { text: "escrow" }), el("td", { text: x.id }), el("td", { class: "num", text: qar(x.held_dirhams) }), el("td", { text: x.status }))),
    ]),
    el("h3", { text: "Statements" }),
    statementForm(uid),
    el("h3", { text: "Recent history" }),
    table(["When", "Type", "Amount", "Balance after"], user.history.map((h) =>
      el("tr", {}, el("td", { text: when(h.created_at) }), el("td", { text: h.type }), el("td", { class: "num", text: qar(h.amount_dirhams) }),
        el("td", { class: "num", text: qar(h.balance_after_dirhams) })))),
    el("h3", { text: "Escrows" }),
    table(["Id", "Job · milestone", "Role", "Other party", "Amount", "Status"], user.escrows.map((e) => {
      const asClient = e.client_id === uid;
      return el("tr", {}, el("td", { text: e.id }), el("td", { text: `${e.job_id} · ${e.milestone}` }), el("td", { text: asClient ? "client" : "freelancer" }),
        el("td", {}, userLink(asClient ? e.freelancer_id : e.client_id)), el("td", { class: "num", text: qar(e.amount_dirhams) }), el("td", { text: e.status }));
    })),
    el("h3", { text: "KYC history" }),
    table(["When", "Status", "By", "Note"], user.kyc.history.map((k) =>
      el("tr", {}, el("td", { text: when(k.at) }), el("td", { text: k.status }), el("td", {}, k.by ? userLink(k.by) : ""), el("td", { text: k.note || "" })))));
  return section;
}

// The month's statement of a user: this month by default (Qatar time, UTC+3).
function statementForm(uid) {
  const month = el("input", { type: "month", name: "month", value: new Date(Date.now() + 3 * 3600_000).toISOString().slice(0, 7) });
  const button = (text, format, lang) =>
    el("button", { type: "button", text, on: { click: () => downloadStatement(uid, month.value, format, lang) } });
  return el("div", { class: "actions" }, labelled("Month (Qatar time)", month),
    button("PDF, English", "pdf", "en"), button("PDF, Arabic", "pdf", "ar"), button("CSV", "csv", null));
}

async function vault() {
  const v = await api("GET", "/api/admin/coins/vault");
  const canvas = el("canvas", { id: "daily", height: "90" });
  const report = el("div", {}, el("p", { class: "hint", text: "Reconcile now checks what is new since the last run (seconds, whatever the history). The full replay goes through the whole ledger and every document, in chunks, in the background." }));
  const progress = el("div", { id: "full-replay" });
  const from = el("input", { type: "date", name: "from" });
  const to = el("input", { type: "date", name: "to" });
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
    el("p", { class: "hint", text: `As of ${when(v.as_of)}.` }),
    el("h3", { text: "Last 90 days (days in UTC)" }), canvas,
    el("h3", { text: "Reconciliation" }), report,
    el("div", { class: "actions" }, actionButton("Reconcile now", async () => {
      const r = await api("GET", "/api/admin/coins/reconciliation");
      const effects = r.pending_effects, outbox = r.pending_outbox;
      report.replaceChildren(...[
        el("p", { class: r.ok ? "ok" : "bad", text: r.ok ? "OK: every coin accounted for." : `${r.problems.length} problem(s)` }),
        el("p", { class: "hint", text: `${r.checked.entries} new entries and ${r.checked.accounts} accounts checked, on a checkpoint of ${r.checked.history_entries} entries; ${effects.count} with effects still on their way (oldest ${effects.oldest_age_seconds} s).` }),
        el("p", { class: "hint", text: `${outbox.count} events not yet delivered to the app (oldest ${outbox.oldest_age_seconds} s); the repair delivers what no trigger did after 10 minutes.` }),
        r.ok ? null : el("pre", { text: JSON.stringify(r.problems.slice(0, 50), null, 2) }),
      ].filter(Boolean));
      return r.ok ? "Reconciled: nothing wrong in what is new." : `Reconciled: ${r.problems.length} problem(s), listed below.`;
    }, { after: null }),
    actionButton("Full replay", async () => {
      const run = await api("POST", "/api/admin/coins/reconciliation/full", {});
      follow(run.id, progress);
      return `Full replay ${run.id} started; its progress is below.`;
    }, { after: null })), progress,
    el("h3", { text: "Export for the accountant" }),
    el("form", { class: "actions", on: { submit: (event) => { event.preventDefault(); exportLedger(from.value, to.value); } } },
      labelled("From (Asia/Qatar, included)", from), labelled("To (excluded)", to),
      el("button", { type: "submit", class: "primary", text: "Download CSV" })));
  requestAnimationFrame(() => {
    if (!window.Chart) return;
    new Chart(canvas, {
      type: "line",
      data: {
        labels: v.daily.map((d) => d.day.slice(5)),
        datasets: [
          { label: "issued (QAR)", data: v.daily.map((d) => d.issued_dirhams / 100), borderColor: "#1b7f3b" },
          { label: "adjusted by admins (QAR)", data: v.daily.map((d) => d.adjusted_dirhams / 100), borderColor: "#b8860b" },
          { label: "retired (QAR)", data: v.daily.map((d) => d.retired_dirhams / 100), borderColor: "#a4161a" },
          { label: "fees (QAR)", data: v.daily.map((d) => d.fees_dirhams / 100), borderColor: "#14213d" },
        ],
      },
      options: { animation: false, plugins: { legend: { position: "bottom" } } },
    });
  });
  return section;
}

// A full replay's progress, asked every two seconds until it is done.
async function follow(runId, box) {
  for (;;) {
    const run = await api("GET", `/api/admin/coins/reconciliation/runs/${runId}`);
    box.replaceChildren(
      el("p", { class: run.status === "running" ? "hint" : run.ok ? "ok" : "bad",
        text: run.status === "running"
          ? `Full replay ${run.id}: ${run.phase}, ${run.entries} entries and ${run.documents} documents so far (${run.steps} steps).`
          : `Full replay ${run.id} done: ${run.entries} entries, ${run.documents} documents, ${run.problem_count} problem(s); finished ${when(run.finished_at)}.` }),
      run.problem_count ? el("pre", { text: JSON.stringify(run.problems.slice(0, 50), null, 2) }) : "");
    if (run.status !== "running" || !box.isConnected) return;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// A file from the API (the ledger's CSV, a user's statement): fetched with the admin's
// token, then saved; `done` says what was saved.
async function download(path, filename, done) {
  showError("");
  try {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
    if (!response.ok) {
      const error = (await response.json().catch(() => ({}))).error || {};
      throw new ApiError(response.status, error.code, error.message || `HTTP ${response.status}`, error.details || {});
    }
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    showNotice(done);
  } catch (error) {
    showError(error);
  }
}

// The ledger of a period as CSV, by days in Asia/Qatar.
async function exportLedger(fromDay, toDay) {
  if (!fromDay || !toDay) return showError(new Error("Give both days."));
  const bound = (day) => `${day}T00:00:00+03:00`;
  const query = new URLSearchParams({ from: bound(fromDay), to: bound(toDay) });
  await download(`/api/admin/coins/ledger/export?${query}`, `guild-coins-ledger-${fromDay}-${toDay}.csv`,
    `Exported the ledger from ${fromDay} to ${toDay} (Asia/Qatar).`);
}

// A user's statement of a month (YYYY-MM, Qatar time), as PDF in a language or as CSV.
async function downloadStatement(uid, month, format, lang) {
  if (!month) return showError(new Error("Choose a month."));
  const query = new URLSearchParams({ user_id: uid, format, ...(lang ? { lang } : {}) });
  await download(`/api/coins/statements/${month}?${query}`, `guild-coins-statement-${uid}-${month}${lang ? "-" + lang : ""}.${format}`,
    `Downloaded ${uid}'s statement of ${month} (${format === "csv" ? "CSV" : lang === "ar" ? "PDF, Arabic" : "PDF, English"}).`);
}

window.addEventListener("hashchange", () => {
  showError("");
  showNotice("");
  route();
});
start();
