/**
 * checkoutHtml, SADAD's auto-submitting form: no value escapes its attribute, every field
 * is there once, a GET or a non-https action is refused, and the page posts itself.
 * No stack needed.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import vm from "node:vm";

import { checkoutHtml, type CheckoutForm } from "../src/index.js";

const sadad: CheckoutForm = {
  action: "https://sadadqa.com/webpurchase",
  method: "POST",
  fields: {
    merchant_id: "7654321",
    ORDER_ID: "pur_123",
    TXN_AMOUNT: "5.50",
    CALLBACK_URL: "https://guild-app.web.app/api/coins/sadad/callback?a=1&b=2",
    WEBSITE: "guild-app.web.app",
    email: "payer@example.com",
    MOBILE_NO: "97455555555",
    txnDate: "2026-12-01 15:00:00",
    signature: "A1B2C3",
  },
};

type Tag = { name: string; closing: boolean; attributes: Record<string, string> };

const UNESCAPE: Record<string, string> = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'" };

/** The page's tags as an HTML tokenizer reads them (double-quoted attributes, no `>` inside). */
function tags(html: string): Tag[] {
  return Array.from(html.matchAll(/<(\/?)([a-z!][^\s/>]*)([^>]*)>/gi), ([, slash, name, rest]) => ({
    name: name.toLowerCase(),
    closing: slash === "/",
    attributes: Object.fromEntries(
      Array.from(rest.matchAll(/([^\s="]+)(?:="([^"]*)")?/g), ([, key, value]) => [
        key.toLowerCase(),
        (value ?? "").replace(/&(?:amp|lt|gt|quot|#39);/g, (e) => UNESCAPE[e]),
      ]),
    ),
  }));
}

const inputs = (html: string) => tags(html).filter((t) => t.name === "input");

test("a value with quotes or </script> stays inside its value attribute", () => {
  const hostile = `"><script>alert(1)</script><input name='x`;
  const html = checkoutHtml({ ...sadad, fields: { ORDER_ID: hostile, [`a"b`]: "it's & <done>" } });
  assert.deepEqual(
    inputs(html).map((t) => t.attributes),
    [
      { type: "hidden", name: "ORDER_ID", value: hostile },
      { type: "hidden", name: `a"b`, value: "it's & <done>" },
    ],
  );
  assert.ok(!html.includes(`"><script>`), "the raw value is not in the page");
  assert.ok(html.includes("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;input name=&#39;x"));
  assert.equal(html.split("<script").length, 2, "one script: ours");
  assert.equal(html.split("</script>").length, 2);
});

test("every field is posted exactly once, to the action, by POST", () => {
  const html = checkoutHtml(sadad);
  const forms = tags(html).filter((t) => t.name === "form" && !t.closing);
  assert.equal(forms.length, 1);
  assert.deepEqual(forms[0].attributes, { method: "post", action: sadad.action });
  const posted = inputs(html).map((t) => [t.attributes.name, t.attributes.value]);
  assert.deepEqual(posted, Object.entries(sadad.fields));
  assert.ok(html.includes("callback?a=1&amp;b=2"), "& escaped");
  assert.deepEqual(checkoutHtml({ ...sadad, fields: {} }).match(/<input/g), null);
});

test("a method other than POST, a non-https action or a non-string value is refused", () => {
  for (const method of ["GET", "post", ""]) {
    assert.throws(() => checkoutHtml({ ...sadad, method: method as "POST" }), /POSTed by the browser/);
  }
  for (const action of [
    "http://sadadqa.com/webpurchase",
    "javascript:alert(1)",
    "//sadadqa.com/webpurchase",
    "/webpurchase",
    "https://",
    "",
    "http://localhost.evil.example/",
    "http://127.0.0.1.evil.example/",
    "http://127.0.0.1@evil.example/",
  ]) {
    assert.throws(() => checkoutHtml({ ...sadad, action }), /must be an https:\/\/ URL/, action);
  }
  for (const action of ["https://sadadqa.com/webpurchase", "http://127.0.0.1:8123/webpurchase", "http://localhost:5050/", "http://localhost"]) {
    assert.doesNotThrow(() => checkoutHtml({ ...sadad, action }), action);
  }
  const amount = 5.5 as unknown as string;
  assert.throws(() => checkoutHtml({ ...sadad, fields: { TXN_AMOUNT: amount } }), /"TXN_AMOUNT" must be a string/);
});

test("the page is a complete document that submits its form on load", () => {
  const html = checkoutHtml({ ...sadad, fields: { ...sadad.fields, submit: "shadows form.submit" } });
  assert.match(html, /^<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n/);
  assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  assert.match(html, /<noscript>.*<\/noscript>\n<button type="submit">Continue to payment<\/button>\n<\/form>/);
  const names = tags(html).map((t) => (t.closing ? "/" : "") + t.name);
  assert.deepEqual(names.slice(-5), ["/form", "script", "/script", "/body", "/html"], "the script runs once the form is there");

  // Run the page's script against a stand-in document: it submits the form, even though a
  // field named "submit" hides the form's own submit method.
  const script = html.split("<script>")[1].split("</script>")[0];
  const submitted: unknown[] = [];
  class HTMLFormElement {
    submit() {
      submitted.push(this);
    }
  }
  const form = Object.assign(new HTMLFormElement(), { submit: { name: "submit" } });
  vm.runInNewContext(script, { HTMLFormElement, document: { forms: [form] } });
  assert.deepEqual(submitted, [form]);
});
