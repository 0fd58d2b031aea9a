"""The payment gateway port: what a purchase needs from a gateway, and its two adapters,
Fatora (coins.fatora) and SADAD (coins.sadad). The wire formats live in those modules;
here they are translated into one vocabulary, so that purchases never ask which gateway
it is except to pick one.

What a purchase needs:
- `checkout(purchase)`: where the payer pays (a hosted page's URL; for SADAD, the signed
  form the payer's browser posts, and our page that posts it).
- `notice(source, ...)`: what a browser return, a callback or a webhook names (an order,
  maybe the gateway's reference of the payment). Nothing more of it is believed;
  `Forged` when a checksum the gateway documents does not hold.
- `verify(order_id, reference)`: the gateway's own API on the payment: the only thing
  that can make a purchase paid. None when the gateway cannot be asked (SADAD is asked
  by its transaction number only, which a notice brings).
- `refund(order_id, reference)`: the money back by API; `ManualRefund` where the gateway
  documents none (SADAD: an admin refunds in its panel).

Errors: `Unavailable` (no answer: the call may succeed later, or may have succeeded),
`Refused` (a definite no).
"""

from __future__ import annotations

import contextlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Iterator, Mapping, Protocol
from urllib.parse import parse_qsl

from . import catalog, fatora, sadad

CURRENCY = "QAR"


class Name(StrEnum):
    FATORA = "fatora"
    SADAD = "sadad"


class Source(StrEnum):
    """Who names an order: the payer's browser (Fatora's return, SADAD's callback) or the
    gateway's server (a webhook)."""

    BROWSER = "browser"
    WEBHOOK = "webhook"


class Status(StrEnum):
    PAID = "paid"
    FAILED = "failed"
    PENDING = "pending"  # nothing paid yet (Fatora's PENDING)
    IN_PROGRESS = "in_progress"  # paid, the bank not yet confirmed (SADAD's In Progress)


class Unavailable(Exception):
    """Unreachable, timed out, 5xx or 429: the call may succeed later, or may have
    succeeded already (the answer was lost)."""


class Refused(Exception):
    """The gateway answered and said no."""


class Forged(Exception):
    """A notice whose checksum does not hold."""


class ManualRefund(Exception):
    """The gateway has no refund API: the money goes back by hand, in its panel."""


@dataclass(frozen=True)
class Verification:
    """What the gateway's API says of a payment."""

    order_id: str | None  # the order it belongs to, as the gateway knows it
    reference: str | None  # the gateway's transaction (Fatora's id, SADAD's SD… number)
    status: Status
    # None when not a whole number of dirhams: it then matches nothing.
    amount_dirhams: int | None
    currency: str | None
    mode: str | None  # "live" or "test"; None when the gateway did not say (never live)


@dataclass(frozen=True)
class Notice:
    order_id: str
    reference: str | None


@dataclass(frozen=True)
class Checkout:
    url: str  # where the app sends the payer
    form: dict[str, Any] | None = None  # {action, method: "POST", fields}: a form to post


class Gateway(Protocol):
    name: Name
    required_mode: str  # coins are issued only for payments verified in this mode
    # Whether `verify` needs the gateway's reference (SADAD) or finds a payment by our
    # order id alone (Fatora). Where it needs one, the reference a notice names is kept
    # on the purchase before it is verified, for the sweeper to ask by.
    asks_by_reference: bool

    def checkout(self, purchase: Mapping[str, Any]) -> Checkout: ...

    def notice(self, source: Source, query: Mapping[str, str], body: bytes, content_type: str) -> Notice: ...

    def verify(self, order_id: str, reference: str | None) -> Verification | None: ...

    def refund(self, order_id: str, reference: str) -> str: ...


@contextlib.contextmanager
def _translated(unavailable: type[Exception], refused: type[Exception]) -> Iterator[None]:
    try:
        yield
    except unavailable as error:
        raise Unavailable(str(error)) from None
    except refused as error:
        raise Refused(str(error)) from None


# A webhook's numbers are amounts and flags: anything beyond this is no notice of ours
# (and `1e999999` must not become a million digits of text for its checksum).
NUMBER_TEXT_MAX = 32
EXPONENT_MAX = 12


def _json_object(body: bytes) -> dict[str, Any]:
    """A webhook's JSON object, its numbers read as Decimal (never floats) and bounded;
    ValueError for anything else (NaN, deep nesting, huge numbers, not an object)."""

    def number(text: str) -> Decimal:
        value = Decimal(text)
        if len(text) > NUMBER_TEXT_MAX or not value.is_finite() or abs(value.adjusted()) > EXPONENT_MAX:
            raise ValueError("a number out of bounds")
        return value

    def constant(name: str):
        raise ValueError(f"{name} is not JSON")

    try:
        payload = json.loads(body, parse_float=number, parse_int=number, parse_constant=constant)
    except (ValueError, UnicodeDecodeError, RecursionError, ArithmeticError):
        raise ValueError("not a JSON webhook") from None
    if not isinstance(payload, dict):
        raise ValueError("not a JSON object")
    return payload


class FatoraGateway:
    """Fatora's hosted checkout; verify by order (and transaction) id; refunds by API.
    Its notifications carry no signature: they only name an order."""

    name = Name.FATORA
    asks_by_reference = False

    def __init__(
        self, client: fatora.FatoraClient, *, return_url: str, required_mode: str, webhook_token: str | None = None
    ) -> None:
        self.client, self.return_url, self.required_mode = client, return_url, required_mode
        # Optional: a token of ours in the webhook URL set in Fatora's dashboard
        # (`...?token=`); where set, a webhook without it is refused.
        self.webhook_token = webhook_token

    def checkout(self, purchase: Mapping[str, Any]) -> Checkout:
        payer = purchase["payer"]
        with _translated(fatora.FatoraUnavailable, fatora.FatoraError):
            url = self.client.checkout(
                order_id=purchase["id"],
                amount_dirhams=purchase["price_dirhams"],
                client={
                    "name": payer.get("name") or "GUILD user",
                    "phone": payer.get("phone") or "",
                    "email": payer.get("email") or "",
                },
                language=purchase["language"],
                success_url=self.return_url,
                failure_url=self.return_url,
                note=f"GUILD Coins worth {purchase['value_dirhams'] // catalog.DIRHAMS_PER_QAR} QAR",
            )
        return Checkout(url=url)

    def notice(self, source: Source, query: Mapping[str, str], body: bytes, content_type: str) -> Notice:
        if source is Source.WEBHOOK:
            given = query.get("token", "")
            if self.webhook_token and not hmac.compare_digest(given.encode(), self.webhook_token.encode()):
                raise Forged("This webhook URL needs its token.")
            found = fatora.notice_of({k: v for k, v in query.items() if k != "token"}, body, content_type)
        else:
            found = fatora.notice_of(query)
        return Notice(found.order_id, found.transaction_id)

    def verify(self, order_id: str, reference: str | None) -> Verification:
        with _translated(fatora.FatoraUnavailable, fatora.FatoraError):
            found = self.client.verify(order_id, reference)
        return Verification(
            order_id=found.order_id,
            reference=found.transaction_id,
            status=FATORA_STATUS.get(found.payment_status, Status.PENDING),
            amount_dirhams=found.amount_dirhams,
            currency=found.currency,
            mode=found.mode,
        )

    def refund(self, order_id: str, reference: str) -> str:
        with _translated(fatora.FatoraUnavailable, fatora.FatoraError):
            return self.client.refund(order_id, reference)


FATORA_STATUS = {fatora.PAID: Status.PAID, fatora.FAILED: Status.FAILED, fatora.PENDING: Status.PENDING}
SADAD_STATUS = {sadad.SUCCESSFUL: Status.PAID, sadad.FAILED: Status.FAILED, sadad.IN_PROGRESS: Status.IN_PROGRESS}


@dataclass(frozen=True)
class SadadAccount:
    """The merchant's SADAD configuration (the secret key from Secret Manager)."""

    merchant_id: str
    secret_key: str
    website: str  # the domain the key is tied to: the form's WEBSITE, the API's login domain
    checkout_url: str
    callback_url: str  # our callback, as the form's CALLBACK_URL
    page_url: str  # our page that posts the form: "{site}/api/coins/purchase/{id}/checkout"
    required_mode: str


class SadadGateway:
    """SADAD Web Checkout 2.1: a form signed here and posted by the payer's browser; the
    callback and the webhook carry checksums; getTransaction, by SADAD's transaction
    number, verifies. No refund API is documented."""

    name = Name.SADAD
    asks_by_reference = True

    def __init__(self, client: sadad.SadadClient, account: SadadAccount) -> None:
        self.client, self.account, self.required_mode = client, account, account.required_mode

    def checkout(self, purchase: Mapping[str, Any]) -> Checkout:
        """The same form for the same purchase, whenever it is built (txnDate is the
        purchase's creation), so a retried request signs what the first one did."""
        payer = purchase["payer"]
        fields = sadad.checkout_form(
            merchant_id=self.account.merchant_id,
            secret_key=self.account.secret_key,
            order_id=purchase["id"],
            amount_dirhams=purchase["price_dirhams"],
            callback_url=self.account.callback_url,
            website=self.account.website,
            email=payer["email"],
            mobile_no=payer["mobile_no"],
            at=purchase["created_at"],
        )
        return Checkout(
            url=self.account.page_url.format(id=purchase["id"]),
            form={"action": self.account.checkout_url, "method": "POST", "fields": fields},
        )

    def notice(self, source: Source, query: Mapping[str, str], body: bytes, content_type: str) -> Notice:
        """The callback is form-encoded (decoded once, W13), the webhook JSON; either way
        the checksum must hold before anything in it is read."""
        key = self.account.secret_key
        if source is Source.BROWSER:
            try:
                fields = dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True))
            except (ValueError, UnicodeDecodeError):
                raise ValueError("not a form-encoded callback") from None
            if not sadad.verified(sadad.callback_checksum(key, fields), fields.get(sadad.CALLBACK_CHECKSUM)):
                raise Forged("the callback's checksum does not hold")
            found = sadad.callback_notice(fields)
        else:
            payload = _json_object(body)
            if not sadad.verified(sadad.webhook_checksum(key, payload), payload.get(sadad.CALLBACK_CHECKSUM)):
                raise Forged("the webhook's checksum does not hold")
            found = sadad.webhook_notice(payload)
        return Notice(found.order_id, found.transaction_number)

    def verify(self, order_id: str, reference: str | None) -> Verification | None:
        if not reference:
            return None  # a lookup by our order id is undocumented (GST)
        with _translated(sadad.SadadUnavailable, sadad.SadadError):
            found = self.client.transaction(reference)
        return Verification(
            order_id=found.order_id,
            reference=found.transaction_number,
            status=SADAD_STATUS[found.status],
            amount_dirhams=found.amount_dirhams,
            currency=CURRENCY,  # SADAD has no currency field: QAR only
            mode=None if found.sandbox is None else "test" if found.sandbox else "live",
        )

    def refund(self, order_id: str, reference: str) -> str:
        raise ManualRefund(f"SADAD documents no refund API: refund transaction {reference} in SADAD's panel.")
