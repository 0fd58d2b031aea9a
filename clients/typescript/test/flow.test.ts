/**
 * The client against the local stack (started by tests/client/test_typescript.py, which
 * passes where it is): a user buys coins through the Fatora sandbox, pays a job, the
 * freelancer submits, the client approves, and the balances come back as expected.
 * Plus the client's own behaviour: one key per operation reused on retries, the typed
 * error, the user's language sent along.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { CoinsApiError, createCoinsClient } from "../src/index.js";

const base = process.env.COINS_BASE_URL as string;
const jobId = process.env.JOB_ID as string;
const clientUid = process.env.CLIENT_UID as string;
const freelancerUid = process.env.FREELANCER_UID as string;

async function localToken(uid: string): Promise<string> {
  // The local stack's sign-in (POST /_local/token); in the app, Firebase Auth's getIdToken().
  const response = await fetch(`${base}/_local/token`, { method: "POST", body: JSON.stringify({ uid }) });
  return ((await response.json()) as { token: string }).token;
}

function clientFor(uid: string, extra: Partial<Parameters<typeof createCoinsClient>[0]> = {}) {
  return createCoinsClient({ baseUrl: base, getIdToken: () => localToken(uid), ...extra });
}

/** What the payer does in the browser: the sandbox's Pay button, then back through our return. */
async function payAtCheckout(checkoutUrl: string): Promise<string> {
  const page = await (await fetch(checkoutUrl)).text();
  const action = page.split('<form method="post" action="')[1].split('"')[0];
  const paid = await fetch(new URL(action, checkoutUrl), { method: "POST", redirect: "manual" });
  const back = await fetch(paid.headers.get("Location") as string, { redirect: "manual" });
  return back.headers.get("Location") as string;
}

test("a user buys coins, pays a job, the freelancer submits, the client approves", async () => {
  const client = clientFor(clientUid);
  const freelancer = clientFor(freelancerUid);

  const catalog = await client.catalog();
  const pack = catalog.packs.find((p) => p.id === "elite");
  assert.ok(pack, "the catalog has the elite pack");

  const purchase = await client.buyCoins({ pack_id: "elite" });
  assert.equal(purchase.status, "pending");
  const deepLink = await payAtCheckout(purchase.checkout_url as string);
  assert.equal(deepLink, `guild://coins/purchase/${purchase.id}?status=paid`);
  assert.equal((await client.purchase(purchase.id)).status, "paid");
  let wallet = await client.wallet();
  assert.equal(wallet.balance_dirhams, pack.value_dirhams);

  const escrow = await client.payJob({ job_id: jobId, freelancer_id: freelancerUid, amount_dirhams: 20_000 });
  assert.equal(escrow.status, "funded");
  assert.equal(escrow.held_dirhams, 20_000);
  wallet = await client.wallet();
  assert.equal(wallet.balance_dirhams, pack.value_dirhams - 20_000);

  assert.equal((await freelancer.submitWork(escrow.id, "done, see the repo")).status, "submitted");
  const released = await client.release(escrow.id);
  assert.equal(released.status, "released");
  assert.equal(released.released_dirhams, 20_000);
  assert.equal(released.fee_dirhams, 2_000);

  assert.equal((await freelancer.wallet()).balance_dirhams, 18_000, "90% to the freelancer");
  assert.equal((await client.wallet()).balance_dirhams, pack.value_dirhams - 20_000);
  const history = await freelancer.transactions({ limit: 10 });
  assert.equal(history.items[0].amount_dirhams, 18_000);

  // What each keeps: the purchase's receipt, the escrow's for both parties, the month's statement.
  const pdf = (bytes: ArrayBuffer) => new TextDecoder("latin1").decode(new Uint8Array(bytes).subarray(0, 5));
  assert.equal(pdf(await client.purchaseReceipt(purchase.id)), "%PDF-");
  assert.equal(pdf(await client.escrowReceipt(escrow.id, "ar")), "%PDF-");
  assert.equal(pdf(await freelancer.escrowReceipt(escrow.id)), "%PDF-");
  const month = new Date(Date.now() + 3 * 3600_000).toISOString().slice(0, 7); // Qatar's month (UTC+3)
  const csv = (await freelancer.statementCsv(month)).trim().split("\n");
  assert.equal(csv[0].split(",")[0], "time_qatar");
  assert.deepEqual(csv[csv.length - 1].split(",").slice(2), ["closing_balance", "", "", "", "", "180.00", "0.00"], "the closing balance, nothing held");
  await assert.rejects(freelancer.purchaseReceipt(purchase.id), (e: CoinsApiError) => e.status === 404);
});

test("a refusal is a typed error with the API's code, and is not retried", async () => {
  let calls = 0;
  const counting: typeof fetch = (input, init) => {
    calls += 1;
    return fetch(input, init);
  };
  const broke = clientFor("ts-broke", { fetch: counting });
  await assert.rejects(
    broke.payJob({ job_id: jobId, freelancer_id: freelancerUid, amount_dirhams: 500 }),
    (error: unknown) => error instanceof CoinsApiError && error.status === 403 && error.code === "forbidden",
  );
  assert.equal(calls, 1);
});

test("one Idempotency-Key per operation, reused on its retries of 503 and request_in_progress", async () => {
  const sent: Array<string | null> = [];
  const answers = [
    new Response(JSON.stringify({ error: { code: "unavailable", message: "m", details: {} } }), { status: 503, headers: { "Retry-After": "0" } }),
    new Response(JSON.stringify({ error: { code: "request_in_progress", message: "m", details: {} } }), { status: 409 }),
  ];
  const flaky: typeof fetch = async (input, init) => {
    const request = new Request(input as Request, init);
    sent.push(request.headers.get("Idempotency-Key"));
    return answers.shift() ?? fetch(request);
  };
  let keys = 0;
  const client = clientFor(clientUid, { fetch: flaky, backoffMs: 1, newKey: () => `ts-key-${++keys}-${Date.now()}` });
  const escrow = await client.payJob({ job_id: jobId, milestone: "2", freelancer_id: freelancerUid, amount_dirhams: 500 });
  assert.equal(escrow.amount_dirhams, 500);
  assert.equal(sent.length, 3, "two retries, then the work");
  assert.equal(new Set(sent).size, 1, "the same key on every attempt");
  await client.release(escrow.id);
  assert.equal(keys, 2, "a new operation, a new key");
});

test("the user's language goes out as Accept-Language, as it is when each request is made", async () => {
  const sent: Array<string | null> = [];
  const recording: typeof fetch = (input, init) => {
    const request = new Request(input as Request, init);
    sent.push(request.headers.get("Accept-Language"));
    return fetch(request);
  };
  let chosen = "ar";
  const client = clientFor(clientUid, { fetch: recording, language: () => chosen });
  await client.wallet();
  chosen = "en";
  await client.catalog();
  assert.deepEqual(sent, ["ar", "en"]);
});
