"""Response bodies, as models: what the renderers of each service send, described for the
OpenAPI document (coins.openapi). The services build plain dicts; these models do not
validate them at runtime (the conformance tier of the tests does, on every response).

Money is integer dirhams; coins are `{tier symbol: count}`; times are RFC 3339 strings in
UTC; a field that can be absent from the document is sent as null.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from .domain import EntryType, EscrowStatus, KycStatus, PurchaseStatus, WithdrawalStatus

Coins = dict[str, int]
Moment = str | None


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


Item = TypeVar("Item")


class Page(Model, Generic[Item]):
    items: list[Item]
    next_cursor: str | None


# Catalog.


class Tier(Model):
    symbol: str
    name: str
    value_dirhams: int
    color: str
    icon: str


class Pack(Model):
    id: str
    name: str
    coins: Coins
    value_dirhams: int
    price_dirhams: int


class Pricing(Model):
    markup_bps: int
    job_fee_bps: int
    gateway_fee_bps: int
    custom_min_dirhams: int
    custom_max_dirhams: int


class Catalog(Model):
    # The gateways POST /api/coins/purchase takes ("fatora", "sadad"), and the one used
    # when it names none (null if that one is not offered).
    gateways: list[Literal["fatora", "sadad"]]
    default_gateway: Literal["fatora", "sadad"] | None
    coins: list[Tier]
    packs: list[Pack]
    pricing: Pricing


# Wallets.


class Wallet(Model):
    user_id: str
    coins: Coins
    balance_dirhams: int
    held_dirhams: int
    kyc_status: KycStatus
    kyc_qid_masked: str | None
    stats: dict[str, Any]
    updated_at: str


class Transaction(Model):
    id: str
    type: EntryType
    coins_delta: Coins
    amount_dirhams: int
    balance_after_dirhams: int
    refs: dict[str, str]
    created_at: str


class BalanceCheck(Model):
    sufficient: bool
    balance_dirhams: int
    shortfall_dirhams: int
    pay_with: Coins
    change: Coins


class Adjustment(Model):
    entry_id: str
    user_id: str
    coins_delta: Coins
    amount_dirhams: int
    reason: str
    wallet: Wallet


class LimitsLifted(Model):
    user_id: str
    lifted_until: str


class KycSubmission(Model):
    """An admin's view of a submission: the full QID (users see it masked on the wallet)."""

    user_id: str
    status: KycStatus | None
    full_name: str | None
    qid_number: str | None
    document_urls: list[str]
    submitted_at: Moment
    note: str | None


# Escrow.


class Escrow(Model):
    id: str
    status: EscrowStatus
    job_id: str
    milestone: str
    client_id: str
    freelancer_id: str
    amount_dirhams: int
    held_dirhams: int
    released_dirhams: int
    refunded_dirhams: int
    fee_dirhams: int
    coins: Coins
    review_ends_at: Moment
    refund_response_ends_at: Moment
    submission_note: str | None
    changes_note: str | None
    refund_reason: str | None
    dispute: dict[str, Any] | None
    resolution: dict[str, Any] | None
    created_at: Moment
    submitted_at: Moment
    released_at: Moment
    refunded_at: Moment
    disputed_at: Moment
    resolved_at: Moment


# Purchases.


class CheckoutForm(Model):
    """A form the payer's browser posts to the gateway (SADAD: never a GET)."""

    action: str
    method: Literal["POST"]
    fields: dict[str, str]


class Purchase(Model):
    id: str
    user_id: str
    status: PurchaseStatus
    coins: Coins
    value_dirhams: int
    price_dirhams: int
    gateway_fee_dirhams: int
    currency: Literal["QAR"]
    pack_id: str | None
    gateway: Literal["fatora", "sadad"]
    # The gateway's reference of the payment, once verified: Fatora's transaction id,
    # SADAD's transaction number (SD…).
    gateway_reference: str | None
    # Where the app sends the payer: Fatora's hosted page, or (SADAD) our page that
    # posts the signed form (iOS: open it in the browser).
    checkout_url: str | None
    # SADAD only: the signed form itself, for a WebView's auto-submitting form.
    checkout: CheckoutForm | None
    failure_reason: str | None
    needs_review: bool
    review_reason: str | None
    resolution: dict[str, Any] | None
    refund: dict[str, Any] | None
    created_at: Moment
    paid_at: Moment
    refunded_at: Moment


# Withdrawals.


class Signal(Model):
    """A fraud signal: it informs, it blocks nothing."""

    level: Literal["medium", "high"]
    why: str
    since: str


class Withdrawal(Model):
    # The fraud signals the user had when asking: for admins only (null for the user).
    signals: dict[str, Signal] | None
    id: str
    user_id: str
    status: WithdrawalStatus
    amount_dirhams: int
    coins: Coins
    method: Literal["bank_transfer", "wallet"]
    destination: dict[str, str]
    large: bool
    notes: str | None
    payment_reference: str | None
    reason: str | None
    created_at: Moment
    approved_at: Moment
    paid_at: Moment
    rejected_at: Moment


# The console's reads.


class Amount(Model):
    coins: Coins
    dirhams: int


class VaultDay(Model):
    day: str
    entries: int
    issued_dirhams: int
    adjusted_dirhams: int
    retired_dirhams: int
    fees_dirhams: int


class Vault(Model):
    outstanding: Amount
    users: Amount
    held: dict[str, Amount]
    fees: Amount
    issued_dirhams: int
    adjusted_dirhams: int
    retired_dirhams: int
    entries: dict[str, int]
    daily: list[VaultDay]
    as_of: str


class Usage(Model):
    used_count: int
    count_max: int
    used_dirhams: int
    amount_max_dirhams: int | None
    window_seconds: int


class Limits(Model):
    lifted_until: Moment
    purchase: Usage
    withdrawal: Usage
    job_payment: Usage


class OpenHolds(Model):
    withdrawals: list[Withdrawal]
    escrows_as_client: list[Escrow]


class KycView(Model):
    status: KycStatus
    submission: KycSubmission | None
    history: list[dict[str, Any]]


class UserView(Model):
    wallet: Wallet
    history: list[Transaction]
    open_holds: OpenHolds
    escrows: list[Escrow]
    withdrawals: list[Withdrawal]
    purchases: list[Purchase]
    kyc: KycView
    limits: Limits
    signals: dict[str, Signal]


class Pending(Model):
    """What the triggers have not done yet: how many, and how long the oldest has waited."""

    count: int
    oldest_age_seconds: float


class Reconciliation(Model):
    ok: bool
    checked: dict[str, int]
    problems: list[dict[str, Any]]
    pending_effects: Pending
    pending_outbox: Pending


class Queues(Model):
    """How many wait in each of the admins' queues."""

    withdrawals: int
    kyc: int
    disputes: int
    purchases: int


class ReconciliationRun(Model):
    """A full replay in chunks: how far it got, and what it found so far."""

    id: str
    status: Literal["running", "done"]
    phase: Literal["ledger", "documents"] | None
    ok: bool | None
    steps: int
    entries: int
    documents: int
    problem_count: int
    problems: list[dict[str, Any]]
    horizon: str
    started_at: str
    finished_at: str | None


# The error envelope every 4xx and 5xx carries.


class ErrorBody(Model):
    code: str
    message: str
    details: dict[str, Any]


class Error(Model):
    error: ErrorBody
