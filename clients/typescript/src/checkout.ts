/**
 * SADAD's checkout (Web Checkout 2.1): the purchase's `checkout`, a signed form that the
 * payer's browser must POST to SADAD (never a GET), and the page that posts it.
 */

import type { components } from "./schema.js";

/** The form a purchase answers with for SADAD (`purchase.checkout`; null for Fatora). */
export type CheckoutForm = components["schemas"]["CheckoutForm"];

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text made safe inside a double-quoted HTML attribute (or as element text). */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// https to anywhere; plain http only to this machine (the local SADAD sandbox). A string
// test, not `new URL`: React Native's URL has no `protocol` or `hostname` unpolyfilled.
const HTTPS = /^https:\/\/[^\s/?#]+/i;
const LOOPBACK = /^http:\/\/(?:127\.0\.0\.1|localhost)(?::\d+)?(?:[/?#]|$)/i;

/**
 * A complete HTML page that POSTs `form` as soon as it loads (with a visible "Continue to
 * payment" button should the script not run): for a React Native WebView on Android,
 * `<WebView source={{ html: checkoutHtml(purchase.checkout) }} />`. On iOS open
 * `purchase.checkout_url` in Safari instead (`Linking.openURL`): our page there posts the
 * same form.
 *
 * Every name and value is HTML-escaped, so no field can break out of its attribute.
 * Throws an Error for a method other than POST, an action that is not https:// (plain
 * http only to 127.0.0.1 or localhost, the local sandbox), or a value that is not a string.
 */
export function checkoutHtml(form: CheckoutForm): string {
  if (form.method !== "POST") {
    throw new Error(`checkoutHtml: SADAD's checkout is POSTed by the browser, not ${JSON.stringify(form.method)}`);
  }
  if (typeof form.action !== "string" || !(HTTPS.test(form.action) || LOOPBACK.test(form.action))) {
    throw new Error(`checkoutHtml: the checkout's action must be an https:// URL, not ${JSON.stringify(form.action)}`);
  }
  const inputs = Object.entries(form.fields).map(([name, value]) => {
    if (typeof value !== "string") {
      throw new Error(`checkoutHtml: field ${JSON.stringify(name)} must be a string (it is signed as sent)`);
    }
    return `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`;
  });
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>Continue to payment</title>",
    "</head>",
    "<body>",
    `<form method="post" action="${escapeHtml(form.action)}">`,
    ...inputs,
    '<noscript><p>Tap the button to continue to SADAD.</p></noscript>',
    '<button type="submit">Continue to payment</button>',
    "</form>",
    // The prototype's submit: a field named "submit" would shadow form.submit.
    "<script>HTMLFormElement.prototype.submit.call(document.forms[0]);</script>",
    "</body>",
    "</html>",
    "",
  ].join("\n");
}
