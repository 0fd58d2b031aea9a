"""What the domain names: entry types, accounts, the statuses of business documents, and
the rule for ids that come from outside. Pure: no I/O.

Enums are `StrEnum`s, so a member is stored, logged and serialised as its value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class EntryType(StrEnum):
    """The kinds of journal entry (`ledger/{id}.type`)."""

    PURCHASE_ISSUE = "purchase_issue"
    ESCROW_LOCK = "escrow_lock"
    ESCROW_RELEASE = "escrow_release"
    ESCROW_REFUND = "escrow_refund"
    ESCROW_SPLIT = "escrow_split"
    REFUND_HOLD = "refund_hold"  # a purchase refunded: its coins taken back from the buyer
    REFUND_PAID = "refund_paid"  # the money went back: the held coins leave circulation
    REFUND_REVERSED = "refund_reversed"  # the gateway refused: the held coins go back to the buyer
    WITHDRAWAL_HOLD = "withdrawal_hold"
    WITHDRAWAL_PAID = "withdrawal_paid"
    WITHDRAWAL_REJECTED = "withdrawal_rejected"
    ADMIN_ADJUST = "admin_adjust"


class EventKind(StrEnum):
    """What happened, as the outbox (`outbox/{id}`) records it for the people concerned."""

    COINS_ISSUED = "coins_issued"
    PURCHASE_FAILED = "purchase_failed"
    PURCHASE_IN_REVIEW = "purchase_in_review"
    PURCHASE_REFUNDED = "purchase_refunded"
    BALANCE_ADJUSTED = "balance_adjusted"
    ESCROW_FUNDED = "escrow_funded"
    ESCROW_SUBMITTED = "escrow_submitted"
    ESCROW_CHANGES_REQUESTED = "escrow_changes_requested"
    ESCROW_RELEASED = "escrow_released"
    ESCROW_REFUND_REQUESTED = "escrow_refund_requested"
    ESCROW_REFUNDED = "escrow_refunded"
    ESCROW_DISPUTED = "escrow_disputed"
    ESCROW_RESOLVED = "escrow_resolved"
    WITHDRAWAL_REQUESTED = "withdrawal_requested"
    WITHDRAWAL_APPROVED = "withdrawal_approved"
    WITHDRAWAL_PAID = "withdrawal_paid"
    WITHDRAWAL_REJECTED = "withdrawal_rejected"
    RECONCILIATION_PROBLEM = "reconciliation_problem"
    KYC_SUBMITTED = "kyc_submitted"
    KYC_DECIDED = "kyc_decided"
    FRAUD_SIGNAL = "fraud_signal"


class EscrowStatus(StrEnum):
    FUNDED = "funded"
    SUBMITTED = "submitted"
    REFUND_REQUESTED = "refund_requested"
    DISPUTED = "disputed"
    RELEASED = "released"
    REFUNDED = "refunded"
    SPLIT = "split"


class WithdrawalStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    PAID = "paid"
    REJECTED = "rejected"


class PurchaseStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDING = "refunding"
    REFUNDED = "refunded"  # final: nothing ever issues coins for it again


class RefundStatus(StrEnum):
    """A purchase's refund (`purchase_refunds/{purchase_id}`)."""

    HELD = "held"  # the coins are taken back; the gateway not called yet
    CALLING = "calling"  # the gateway's refund was called; its answer not recorded
    UNCERTAIN = "uncertain"  # the call's answer was lost: an admin checks the gateway's dashboard
    MANUAL = "manual"  # no refund API (SADAD): an admin refunds in the gateway's panel
    REFUNDED = "refunded"
    REVERSED = "reversed"  # the gateway refused: the coins went back to the buyer


class KycStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"


class AccountKind(StrEnum):
    USER = "user"  # user:{uid}, the coins of wallets/{uid}
    ESCROW = "escrow"  # escrow:{id}, coins locked for a job, kept on escrows/{id}
    WITHDRAWAL = "withdrawal"  # withdrawal:{id}, coins held for a cash-out, on withdrawals/{id}
    REFUND = "refund"  # refund:{purchase_id}, coins taken back for a refund, on purchase_refunds/{id}
    TREASURY = "treasury"  # the issuer: the negative of everything outstanding
    FEES = "platform"  # platform:fees, job fees earned


# Holds keep their coins on their business document; the treasury and the fees are
# derived from the ledger and are never documents.
HOLD_KINDS = (AccountKind.ESCROW, AccountKind.WITHDRAWAL, AccountKind.REFUND)


@dataclass(frozen=True, order=True)
class Account:
    """A ledger account. Written as text in stored postings: `user:alice`,
    `escrow:E1`, `withdrawal:W1`, `treasury`, `platform:fees`."""

    kind: AccountKind
    id: str = ""

    @staticmethod
    def user(uid: str) -> "Account":
        return Account(AccountKind.USER, uid)

    @staticmethod
    def escrow(escrow_id: str) -> "Account":
        return Account(AccountKind.ESCROW, escrow_id)

    @staticmethod
    def withdrawal(withdrawal_id: str) -> "Account":
        return Account(AccountKind.WITHDRAWAL, withdrawal_id)

    @staticmethod
    def refund(purchase_id: str) -> "Account":
        return Account(AccountKind.REFUND, purchase_id)

    @staticmethod
    def parse(text: str) -> "Account":
        if text == "treasury":
            return TREASURY
        if text == "platform:fees":
            return PLATFORM_FEES
        kind, separator, account_id = text.partition(":")
        if not separator or not account_id or kind not in (AccountKind.USER, *HOLD_KINDS):
            raise ValueError(f"not an account: {text!r}")
        return Account(AccountKind(kind), account_id)

    def __str__(self) -> str:
        if self.kind is AccountKind.TREASURY:
            return "treasury"
        if self.kind is AccountKind.FEES:
            return "platform:fees"
        return f"{self.kind}:{self.id}"

    @property
    def is_hold(self) -> bool:
        return self.kind in HOLD_KINDS

    @property
    def vault_class(self) -> "VaultClass":
        """The aggregate the vault keeps this account's balance in."""
        return VAULT_CLASS[self.kind]


class VaultClass(StrEnum):
    """The aggregates the vault keeps balances in (coins.effects), one per account kind."""

    USERS = "users"
    ESCROW = "escrow"
    WITHDRAWAL = "withdrawal"
    REFUND = "refund"
    TREASURY = "treasury"
    PLATFORM_FEES = "platform_fees"


VAULT_CLASS = {
    AccountKind.USER: VaultClass.USERS,
    AccountKind.ESCROW: VaultClass.ESCROW,
    AccountKind.WITHDRAWAL: VaultClass.WITHDRAWAL,
    AccountKind.REFUND: VaultClass.REFUND,
    AccountKind.TREASURY: VaultClass.TREASURY,
    AccountKind.FEES: VaultClass.PLATFORM_FEES,
}
TREASURY = Account(AccountKind.TREASURY)
PLATFORM_FEES = Account(AccountKind.FEES, "fees")


# Ids from outside (paths, bodies, token uids) become document ids. Firestore refuses
# ids that are `.` or `..`, contain `/`, match `__.*__` (reserved) or exceed 1,500 bytes;
# ours are also limited in length and alphabet, since every one of them is a Firebase
# uid, a Firestore auto-id, or an id the app made.
ID_LENGTH_MAX = 128
_ID = re.compile(r"[A-Za-z0-9_\-]{1,%d}" % ID_LENGTH_MAX)
_RESERVED = re.compile(r"__.*__", re.DOTALL)


def is_valid_id(value: object) -> bool:
    """Whether `value` may become a document id. The one check, applied at the door."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None and _RESERVED.fullmatch(value) is None


def firestore_accepts_id(value: str) -> bool:
    """Firestore's own rule for a document id (laxer than ours): for ids already stored
    before ours was enforced, which the ledger trigger must not choke on."""
    return (
        0 < len(value.encode()) <= 1500 and "/" not in value and value not in (".", "..") and _RESERVED.fullmatch(value) is None
    )


def new_wallet(uid: str, now) -> dict:
    """The document of a wallet that holds nothing yet."""
    return {
        "user_id": uid,
        "coins": {},
        "balance_dirhams": 0,
        "held_dirhams": 0,
        "kyc_status": KycStatus.NONE,
        "stats": {},
        "seq": 0,
        "created_at": now,
        "updated_at": now,
    }
