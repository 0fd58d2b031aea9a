"""Opening a purchase: the pending purchase, then the gateway's checkout, under one
idempotency claim (the gateway call cannot be inside a transaction).

The purchase id is derived from the request's key, and the pending purchase is written
before the gateway is asked: it is the recovery point. A request retried with its key
after a crash finds it and goes on from there (a checkout still to open is opened; one
opened is answered), so a crash never leaves an orphan counted against the buyer's
limits, and one key never opens two purchases. Fatora does not check order ids for
uniqueness, so a retry after a crash in the middle of its checkout call opens a second
hosted page for the same order; only the one answered ever reaches the payer. SADAD's
checkout is a form signed here from the stored purchase: the same every time.
"""

from __future__ import annotations

import hashlib
import html
from typing import Any, Callable, Mapping

from .. import catalog, config, errors, ledger, limits, logs, store
from ..auth import Caller
from ..gateways import CURRENCY, Gateway, Name, Refused, Unavailable
from ..idempotency import Idempotency, claimed
from ..store import Store, existing
from .states import PENDING, Step, moved, render

PURCHASE_ID_LENGTH = 20


def purchase_id_for(idempotency: Idempotency) -> str:
    """The purchase a caller's key names, the same on every retry: 20 hex digits (SADAD
    documents no length or charset for ORDER_ID; this is safe for both gateways)."""
    text = f"{idempotency.scope}\n{idempotency.key}"
    return hashlib.sha256(text.encode()).hexdigest()[:PURCHASE_ID_LENGTH]


def create(
    db: Store,
    gateway_for: Callable[[str], Gateway],
    gateway: Name,
    caller: Caller,
    *,
    coins: Mapping[str, int],
    pack_id: str | None,
    language: str,
    payer: Mapping[str, str | None],
    idempotency: Idempotency,
) -> ledger.Response:
    with claimed(db, idempotency, ledger.now_utc()) as claim:
        if isinstance(claim, ledger.Response):
            return claim
        purchase_id = purchase_id_for(idempotency)
        value = catalog.value_dirhams(coins)
        price = catalog.price_dirhams(value)
        pending = {
            "id": purchase_id,
            "user_id": caller.uid,
            "status": PENDING,
            "gateway": gateway,
            "coins": catalog.normalize(coins),
            "value_dirhams": value,
            "price_dirhams": price,
            "gateway_fee_dirhams": catalog.gateway_fee_dirhams(price),
            "currency": CURRENCY,
            "pack_id": pack_id,
            "language": language,
            "payer": dict(payer),
            "checkout_url": None,
            "checkout": None,
            "needs_review": False,
            # What the key asked: a key reused for another purchase, after its record
            # expired, is refused rather than answered with this one.
            "request_fingerprint": idempotency.fingerprint,
        }
        _open(db, caller.uid, pending, claim)
        return open_checkout(db, gateway_for, existing(db.get(store.purchase(purchase_id))), claim)


def _open(db: Store, uid: str, pending: dict[str, Any], claim) -> None:
    """The recovery point: the pending purchase, counted against the buyer's limits in
    the same commit (429 over them, stored as the key's answer); nothing if an earlier
    attempt with the key wrote it."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        found = reader.purchase(pending["id"])
        if found is not None:
            if found.get("request_fingerprint") != pending["request_fingerprint"]:
                raise errors.IdempotencyKeyReused()
            return ledger.Plan(entry=None, respond=lambda outcome: ledger.Response(200, {}))
        counted = limits.admit(reader.limits(uid), limits.Kind.PURCHASE, pending["price_dirhams"], pending["id"], reader.now)
        return ledger.Plan(
            entry=None,
            documents={store.purchase(pending["id"]): {**pending, "created_at": reader.now}, store.limits(uid): counted},
            respond=lambda outcome: ledger.Response(200, {}),
        )

    ledger.execute(db, operation, actor=uid, claim=claim, answers=False)


def open_checkout(db: Store, gateway_for: Callable[[str], Gateway], purchase: Mapping[str, Any], claim) -> ledger.Response:
    """The driver of a pending purchase with no checkout yet: ask its gateway (the one it
    was recorded with), record where the payer pays, answer 201. A purchase past that
    point is answered as it is. A checkout the gateway refused or never answered fails
    the purchase (its order id is never used again) and frees its place in the buyer's
    limits: 502."""
    if purchase["status"] != PENDING or purchase.get("checkout_url"):
        return ledger.answered(db, claim, ledger.Response(201, render(purchase)), actor=purchase["user_id"])
    gateway = gateway_for(purchase["gateway"])
    try:
        checkout = gateway.checkout(purchase)
    except (Refused, Unavailable) as error:
        logs.warning("checkout failed", purchase_id=purchase["id"], gateway=gateway.name, reason=str(error))
        failed = {"status": moved(purchase, Step.FAIL), "failure_reason": f"checkout: {error}"}
        response = ledger.Response(errors.GatewayError.status, errors.GatewayError(purchase_id=purchase["id"]).to_body())
        return write(
            db, purchase["id"], failed, actor=purchase["user_id"], claim=claim, response=response, uncount=purchase["user_id"]
        )
    # Only the new fields: a settlement may already have changed the status.
    opened = {"checkout_url": checkout.url, "checkout": checkout.form}
    return write(
        db,
        purchase["id"],
        opened,
        actor=purchase["user_id"],
        claim=claim,
        response=ledger.Response(201, render({**purchase, **opened})),
    )


def write(
    db: Store, purchase_id: str, fields, *, actor, claim=None, response=None, uncount: str | None = None
) -> ledger.Response:
    """Merges fields into the purchase through the ledger (no money moves); with a
    claim, settles it with `response` in the same commit. `uncount`: the buyer whose
    limits no longer count this purchase (its checkout failed)."""

    def operation(reader: ledger.Reader) -> ledger.Plan:
        documents = {store.purchase(purchase_id): fields}
        if uncount:
            documents[store.limits(uncount)] = limits.forget(reader.limits(uncount), limits.Kind.PURCHASE, purchase_id)
        return ledger.Plan(entry=None, documents=documents, respond=lambda outcome: response or ledger.Response(200, {}))

    return ledger.execute(db, operation, actor=actor, claim=claim)


# The page that posts SADAD's form (the payer's browser on iOS: SADAD takes no GET).

# The one script of the page; the page's Content-Security-Policy allows it by its hash.
SUBMIT_SCRIPT = "document.forms[0].submit();"


def checkout_page(db: Store, purchase_id: str) -> tuple[str, dict[str, str]]:
    """The HTML of a page that posts the purchase's signed form to SADAD as soon as it
    loads (a button where scripts are off), and its headers. The purchase id is the only
    credential: the page reveals what the payer's own form holds (order, price, email,
    mobile number), and only while the purchase is pending."""
    purchase = db.get(store.purchase(purchase_id))
    if purchase is None or not purchase.get("checkout"):
        raise errors.NotFound("No such checkout.")
    if purchase["status"] != PENDING:
        raise errors.InvalidState(f"This purchase is {purchase['status']}: there is nothing to pay.", status=purchase["status"])
    form = purchase["checkout"]
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">' for name, value in form["fields"].items()
    )
    price = html.escape(catalog.in_qar(purchase["price_dirhams"]))
    text = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'><title>GUILD Coins: payment</title></head>"
        f"<body><form method='post' action='{html.escape(form['action'])}'>{inputs}"
        f"<p>Paying {price} through SADAD…</p><noscript><button type='submit'>Continue to payment</button></noscript>"
        f"</form><script>{SUBMIT_SCRIPT}</script></body></html>"
    )
    return text, {
        "Content-Security-Policy": (
            # No form-action: browsers apply it to the redirects after the post too, and
            # where SADAD sends the payer next (a bank's 3-D Secure page) is not ours to know.
            f"default-src 'none'; script-src '{_script_hash(SUBMIT_SCRIPT)}'; frame-ancestors 'none'"
        ),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _script_hash(script: str) -> str:
    import base64

    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def chosen(requested: str | None, offered: tuple[str, ...]) -> Name:
    """The gateway of a new purchase: the one asked for, else PURCHASE_GATEWAY_DEFAULT;
    422 for one this configuration does not offer."""
    name = requested or config.settings().purchase_gateway_default
    if name not in offered:
        raise errors.ValidationFailed(
            fields=[{"field": "gateway", "message": f"{name} is not offered here; offered: {list(offered)}"}]
        )
    return Name(name)


def payer_of(gateway: Name, caller: Caller, *, email: str | None, mobile_no: str | None) -> dict[str, str | None]:
    """Who pays, for the gateway's page: the request's email and mobile number, else the
    ID token's. SADAD requires both (422 naming the missing one); Fatora takes what there is."""
    payer = {
        "name": caller.name,
        "email": email or caller.email,
        "phone": mobile_no or caller.phone,  # as given: Fatora's client.phone
        "mobile_no": _digits(mobile_no or caller.phone),  # SADAD's MOBILE_NO
    }
    if gateway is Name.SADAD:
        missing = [
            {"field": field, "message": "SADAD needs the payer's " + words + "; give it, or sign in with one"}
            for field, words in (("email", "email"), ("mobile_no", "mobile number"))
            if not payer[field]
        ]
        if missing:
            raise errors.ValidationFailed(fields=missing)
    return payer


def _digits(phone: str | None) -> str | None:
    """An E.164 number (+97450000000) as SADAD's samples write it (97450000000)."""
    return phone.lstrip("+") if phone else None
