"""A contract check against the real SADAD (not part of `make test`): whether SADAD takes
the checkout form coins/sadad.py signs, and what its API answers, field by field, next
to what the adapter expects.

    SADAD_MERCHANT_ID=<MID> SADAD_SECRET_KEY=<the *test* secret key> SADAD_WEBSITE=<the key's domain> \\
        [SADAD_TRANSACTION_NUMBER=SD...] make sadad-contract

1. It signs a checkout form of 1.00 QAR with coins.sadad.checkout_form (a fresh order id)
   and POSTs it to SADAD_CHECKOUT_URL (default coins.config.SADAD_CHECKOUT_URL_DEFAULT) as a browser
   would, form-encoded, following no redirect, then prints the fields it posted (never
   the secret key), the HTTP status and the first lines of the page. Nothing is paid:
   the form only opens SADAD's payment page. SADAD checks the signature, so a refusal
   naming it means the key, the signing rule or the hex case (upper, per W7) is wrong;
   on any refusal it posts a fresh form once more with the hex in lower case and says
   whether that one was taken.
2. It logs in to SADAD_API_URL (default SADAD's sandbox API) with coins.sadad.SadadClient
   and, given SADAD_TRANSACTION_NUMBER (a payment made in test mode), prints
   getTransaction's answer field by field and what the adapter made of it. Without one it
   writes a checkout page to open in a browser, to pay in test mode.

It exits 0 when SADAD took the form and the login (and answered the lookup, when one was
asked), 1 when SADAD refused one of them or did not answer, and 2 when the keys are not
set.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from deploy.fatora_contract import flatten

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

# SADAD's sandbox API (AUTH; the project's SADAD reference, section 1). Live is
# https://api-s.sadad.qa/api/: a test key belongs on the sandbox.
SANDBOX_API_URL = "https://api-sandbox.sadad.qa/api/"
PLACEHOLDER_CALLBACK_URL = "https://example.invalid/callback"
AMOUNT_DIRHAMS = 100  # 1.00 QAR
# The payer's details are mandatory fields (W8); these are placeholders.
EMAIL, MOBILE_NO = "buyer@example.com", "97450000000"
REQUIRED = ("SADAD_MERCHANT_ID", "SADAD_SECRET_KEY", "SADAD_WEBSITE")

# getTransaction's field -> what coins.sadad.SadadClient.transaction expects of it. GST's
# answer is cut off in SADAD's documentation: these are the names the adapter reads.
EXPECTED = {
    "transactionno": "the SD... number asked for",
    "website_ref_no": "our ORDER_ID of that payment",
    "amount": "a JSON number (read as Decimal) or text, QAR exact to the dirham",
    "transactionstatus": "Success | Failed | Inprogress (GST also: Refund, Rejected, Pending, Onhold)",
    "issandboxmode": "1 (or true) for a test key",
}
# Words of a page that refuses a form. SADAD's error pages are undocumented: the verdict
# is a guess from the status and these words, and the lines printed are what to judge by.
SIGNATURE_WORDS = re.compile(r"signature|checksum|hash", re.IGNORECASE)
ERROR_WORDS = re.compile(
    r"\b(error|invalid|incorrect|mismatch|wrong|denied|unauthori[sz]ed|not allowed|missing)\b", re.IGNORECASE
)


def page_lines(text: str, limit: int = 8) -> tuple[str, list[str]]:
    """A page's title and its first visible lines (tags, scripts and styles left out)."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    body = re.sub(r"<(script|style|title)\b.*?</\1\s*>", " ", text, flags=re.IGNORECASE | re.DOTALL)
    lines = [html.unescape(" ".join(line.split())) for line in re.split(r"<[^>]*>|\n", body)]
    return (html.unescape(" ".join(title.group(1).split())) if title else ""), [line for line in lines if line][:limit]


def post_form(url: str, form: dict[str, str]):
    """The form as a browser submits it: form-encoded, no redirect followed. No Origin or
    Referer: whether SADAD checks them is undocumented."""
    import requests

    from coins.sadad import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS

    return requests.post(
        url,
        data=form,
        headers={"Accept": "text/html,application/xhtml+xml", "User-Agent": "guild-coins sadad-contract"},
        allow_redirects=False,
        timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
    )


def judge(answer) -> str:
    """'accepted', 'redirected' or 'rejected', and why, printed."""
    title, lines = page_lines(answer.text)
    print(f"   HTTP {answer.status_code} {answer.reason or ''}".rstrip())
    if answer.is_redirect:
        print(f"   Location: {answer.headers.get('Location', '(none)')}")
    print(f"   title: {title or '(none)'}")
    for line in lines:
        print(f"   | {line[:120]}")
    seen = " ".join([title, *lines, answer.headers.get("Location", "") if answer.is_redirect else ""])
    if answer.status_code >= 400 or ERROR_WORDS.search(seen):
        if SIGNATURE_WORDS.search(seen):
            print("-> rejected, and the page names the signature: the key, the signing rule or the hex case is wrong.")
        else:
            print("-> rejected (an error status or an error named on the page).")
        return "rejected"
    if answer.is_redirect:
        print(
            "-> redirected (not followed): a redirect to SADAD's payment or login page means the form was taken; open it to be sure."
        )
        return "redirected"
    print("-> looks like SADAD's payment page (no error named): the form was taken.")
    return "accepted"


def signed_form(merchant_id: str, secret_key: str, website: str, callback_url: str) -> dict[str, str]:
    """The adapter's own checkout form, for a fresh order id (SADAD wants each ORDER_ID once, W8)."""
    from coins import sadad

    return sadad.checkout_form(
        merchant_id=merchant_id,
        secret_key=secret_key,
        order_id=f"contract{uuid.uuid4().hex[:12]}",
        amount_dirhams=AMOUNT_DIRHAMS,
        callback_url=callback_url,
        website=website,
        email=EMAIL,
        mobile_no=MOBILE_NO,
        at=datetime.now(timezone.utc),
    )


def submit(checkout_url: str, form: dict[str, str]) -> str:
    """The form posted and SADAD's answer judged; 'unanswered' when SADAD did not answer."""
    import requests

    try:
        answer = post_form(checkout_url, form)
    except requests.RequestException as error:
        print(f"-> SADAD did not answer: {type(error).__name__}: {error}")
        return "unanswered"
    return judge(answer)


def check_form(checkout_url: str, merchant_id: str, secret_key: str, website: str, callback_url: str) -> bool:
    form = signed_form(merchant_id, secret_key, website, callback_url)
    print(f"== checkout: the form posted to {checkout_url} (signed by coins.sadad.sign, the secret key not shown)")
    for name, value in form.items():
        print(f"   {name:14} {value}")
    print("\n== checkout: SADAD answered")
    verdict = submit(checkout_url, form)
    if verdict in ("accepted", "redirected"):
        print("-> the adapter's form was taken, its signature in upper-case hex as W7 shows.")
        return True
    if verdict == "unanswered":
        return False
    # Was it the case? W7 shows upper case, SADAD's end-to-end sample lower case.
    lower = signed_form(merchant_id, secret_key, website, callback_url)
    lower["signature"] = lower["signature"].lower()
    print(f"\n== checkout again, the signature in lower case (order {lower['ORDER_ID']}): SADAD answered")
    if submit(checkout_url, lower) != "accepted":
        print(
            "-> lower case refused too: the case is not (only) what is wrong. Check the secret key (the test one), the "
            "merchant id, SADAD_WEBSITE (the domain the key is tied to) and which fields are signed (coins.sadad.sign)."
        )
    else:
        print("-> SADAD takes lower-case hex but not upper case: coins.sadad.sign must send lower case.")
    return False


def checkout_page(checkout_url: str, merchant_id: str, secret_key: str, website: str, callback_url: str) -> Path:
    """A page (in the temporary directory, never the repository) with a button that POSTs
    a fresh signed form to SADAD, for a person to pay in test mode. It holds the
    signature, not the secret key."""
    form = signed_form(merchant_id, secret_key, website, callback_url)
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in form.items())
    action = html.escape(checkout_url)
    descriptor, name = tempfile.mkstemp(prefix=f"sadad-{form['ORDER_ID']}-", suffix=".html")
    with os.fdopen(descriptor, "w", encoding="utf-8") as page:
        page.write(
            f'<!doctype html><html><body><form method="post" action="{action}">{inputs}'
            f"<button>Pay 1.00 QAR with SADAD (test mode)</button></form></body></html>"
        )
    return Path(name)


# Fields of an answer never printed: the login's token, and anything like it.
HIDDEN = re.compile(r"token|secret|key|password", re.IGNORECASE)


def show(call: str, answer, *, expected: dict[str, str]) -> None:
    print(f"\n== {call}: SADAD answered HTTP {answer.status_code}")
    try:
        payload = json.loads(answer.text, parse_float=Decimal)
    except ValueError:
        print(f"   not JSON: {answer.text[:300]!r}")
        return
    seen = dict(flatten(payload)) if isinstance(payload, dict) else {"(the answer)": payload}
    for field in [*seen, *(name for name in expected if name not in seen)]:
        value = seen.get(field, "(absent)")
        if HIDDEN.search(field) and field in seen:
            value = f"(a {type(value).__name__} of {len(str(value))} characters, not shown)"
        kind = type(seen[field]).__name__ if field in seen else ""
        print(f"   {field:20} {str(value)[:60]:62} {kind:8} expects: {expected.get(field, '-')}")


def check_api(
    api_url: str, merchant_id: str, secret_key: str, website: str, number: str | None, pay_page: Callable[[], Path] | None
) -> bool:
    """Login, then getTransaction when given a number; pay_page (None once the form was
    refused) writes the checkout page a person pays to get one."""
    import requests

    from coins.sadad import SadadClient, SadadError

    answers: list[tuple[str, requests.Response]] = []

    class Recording(requests.Session):
        """The client's own requests, each answer kept to be printed raw."""

        def request(self, method, url, *args, **kwargs):
            response = super().request(method, url, *args, **kwargs)
            answers.append((url, response))
            return response

    client = SadadClient(api_url, merchant_id, secret_key, website, session=Recording())
    print(f"\n== login to {client.base_url}userbusinesses/login (sadadId {merchant_id}, domain {website})")
    try:
        client._login(force=True)  # the adapter's own login: its token is the one getTransaction uses below
        login = "-> the client logged in"
    except SadadError as error:
        login = f"-> the client was refused: {type(error).__name__}: {error}"
    for _, answer in answers:
        show("login", answer, expected={"accessToken": "a string (the token, not shown)"})
    print(login)
    if client._token is None:
        return False
    answers.clear()
    if not number and pay_page is None:
        print("\n== getTransaction: no SADAD_TRANSACTION_NUMBER given; get the checkout form taken first, then pay one.")
        return True
    if not number:
        print(
            "\n== getTransaction: no SADAD_TRANSACTION_NUMBER given. Pay the printed checkout in test mode: open "
            f"{pay_page()} in a browser (its button posts a freshly signed 1.00 QAR form to SADAD), pay it in test mode, "
            "find the payment's SD... number in panel.sadad.qa's transactions, and run again with "
            "SADAD_TRANSACTION_NUMBER=SD..."
        )
        return True
    try:
        transaction = client.transaction(number)
        verdict = f"-> the adapter read: {transaction}"
    except SadadError as error:
        transaction, verdict = None, f"-> the adapter refused the answer: {type(error).__name__}: {error}"
    for url, answer in answers:
        if url.endswith("getTransaction"):
            show(f"getTransaction {number}", answer, expected=EXPECTED)
        else:
            print(f"\n== login again (SADAD refused the token): HTTP {answer.status_code}")
    print(f"\n{verdict}")
    if transaction is None:
        return False
    if transaction.amount_dirhams is None:
        print("   note: the amount is not an exact number of dirhams as the adapter reads it: it would match no purchase.")
    if transaction.order_id is None:
        print("   note: no website_ref_no: the adapter could not tie the payment to an order.")
    if transaction.sandbox is not True:
        print("   note: SADAD did not say issandboxmode 1; a payment made with a test key should.")
    return True


def main() -> None:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        print(
            f"Set {', '.join(missing)} to check the contract against the real SADAD: SADAD_MERCHANT_ID (the MID in "
            "panel.sadad.qa > Payment Gateway), SADAD_SECRET_KEY (the *test* secret key there) and SADAD_WEBSITE (the "
            "domain that key is tied to). Optional: SADAD_TRANSACTION_NUMBER (an SD... payment made in test mode), "
            "SADAD_CALLBACK_URL, SADAD_CHECKOUT_URL, SADAD_API_URL.",
            file=sys.stderr,
        )
        sys.exit(2)
    from coins import config

    merchant_id, secret_key, website = (os.environ[name] for name in REQUIRED)
    checkout_url = os.environ.get("SADAD_CHECKOUT_URL") or config.SADAD_CHECKOUT_URL_DEFAULT
    callback_url = os.environ.get("SADAD_CALLBACK_URL") or PLACEHOLDER_CALLBACK_URL
    form_ok = check_form(checkout_url, merchant_id, secret_key, website, callback_url)
    api_ok = check_api(
        os.environ.get("SADAD_API_URL") or SANDBOX_API_URL,
        merchant_id,
        secret_key,
        website,
        os.environ.get("SADAD_TRANSACTION_NUMBER") or None,
        (lambda: checkout_page(checkout_url, merchant_id, secret_key, website, callback_url)) if form_ok else None,
    )
    sys.exit(0 if form_ok and api_ok else 1)


if __name__ == "__main__":
    main()
