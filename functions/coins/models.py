"""Request bodies and query strings, validated at the edge. Unknown fields are refused and
types are strict: "500" is not an amount and neither is 500.0 nor true."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import catalog, config
from .domain import ID_LENGTH_MAX, EntryType, EscrowStatus, KycStatus, is_valid_id


class Body(BaseModel):
    # Each model's validator is built on its first use (defer_build): an instance serves
    # one function, which validates only its own bodies and queries (its cold start).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class Query(BaseModel):
    # Query strings are text: "20" must become 20 here, so these are not strict.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _on_grid(amount: int) -> int:
    if not catalog.is_on_grid(amount):
        raise ValueError(f"must be a positive multiple of {catalog.GRID_DIRHAMS} dirhams (5 QAR)")
    return amount


def _known_tiers(coins: dict[str, int]) -> dict[str, int]:
    unknown = sorted(set(coins) - set(catalog.SYMBOLS))
    if unknown:
        raise ValueError(f"unknown tiers {unknown}; tiers are {list(catalog.SYMBOLS)}")
    return coins


def _signed_nonzero_counts(coins: dict[str, int]) -> dict[str, int]:
    if not any(coins.values()):
        raise ValueError("must change at least one tier by a non-zero count")
    return catalog.normalize(coins)


ID_PATTERN = r"^[A-Za-z0-9_\-]{1,%d}$" % ID_LENGTH_MAX


def _document_id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError("must be an id of 1 to 128 letters, digits, '_' or '-', not of the form __name__")
    return value


# The validators check; the json_schema_extra only tells the OpenAPI document what they check.
AmountDirhams = Annotated[
    int, AfterValidator(_on_grid), Field(json_schema_extra={"minimum": catalog.GRID_DIRHAMS, "multipleOf": catalog.GRID_DIRHAMS})
]
# Ids that become document ids: the one check of coins.domain, at the door.
DocumentId = Annotated[str, AfterValidator(_document_id), Field(json_schema_extra={"pattern": ID_PATTERN})]
TIER_KEYS = Field(json_schema_extra={"propertyNames": {"enum": list(catalog.SYMBOLS)}})
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=config.REASON_LENGTH_MAX)]
SignedCount = Annotated[int, Field(ge=-config.ADJUST_COUNT_MAX, le=config.ADJUST_COUNT_MAX)]
# The payer's contact, as SADAD's form requires it (lengths undocumented: bounded here).
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
]
# Digits only, with the country code, as SADAD's samples write it (97450000000); a
# leading + is dropped.
MobileNo = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9]{8,15}$")]


class CheckBalance(Body):
    amount_dirhams: AmountDirhams


class AdjustBalance(Body):
    user_id: DocumentId
    coins: Annotated[dict[str, SignedCount], AfterValidator(_known_tiers), AfterValidator(_signed_nonzero_counts), TIER_KEYS]
    reason: Reason


class Page(Query):
    limit: int = Field(default=config.PAGE_LIMIT_DEFAULT, ge=1, le=config.PAGE_LIMIT_MAX)
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class TransactionsPage(Page):
    type: EntryType | None = None


class UsersPage(Page):
    # The beginning of a uid: the characters an id may hold, as many as it may have.
    prefix: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | None = None


class Receipt(Query):
    """A receipt's language; without it, the request's Accept-Language, then the one the
    caller reads (the app's users/{uid}.language, else the one remembered for them)."""

    lang: Literal["en", "ar"] | None = None


class Statement(Receipt):
    """A monthly statement: PDF or CSV; an admin may ask for any user's."""

    format: Literal["pdf", "csv"] = "pdf"
    user_id: DocumentId | None = None


def _known_pack(pack_id: str) -> str:
    if pack_id not in catalog.PACK_BY_ID:
        raise ValueError(f"unknown pack; packs are {list(catalog.PACK_BY_ID)}")
    return pack_id


def _nonempty_coins(coins: dict[str, int]) -> dict[str, int]:
    if not coins:
        raise ValueError("must hold at least one coin")
    return catalog.normalize(coins)


def _purchasable_coins(coins: dict[str, int]) -> dict[str, int]:
    coins = _nonempty_coins(coins)
    value = catalog.value_dirhams(coins)
    if value > catalog.CUSTOM_MAX_DIRHAMS:
        raise ValueError(f"worth {value} dirhams; one purchase buys at most {catalog.CUSTOM_MAX_DIRHAMS}")
    return catalog.normalize(coins)


def _custom_amount(amount: int) -> int:
    if not catalog.CUSTOM_MIN_DIRHAMS <= amount <= catalog.CUSTOM_MAX_DIRHAMS:
        raise ValueError(f"must be from {catalog.CUSTOM_MIN_DIRHAMS} to {catalog.CUSTOM_MAX_DIRHAMS} dirhams")
    return amount


PositiveCount = Annotated[int, Field(ge=1, le=catalog.CUSTOM_MAX_DIRHAMS // catalog.GRID_DIRHAMS)]


class PurchaseCreate(Body):
    """Exactly one of a pack, explicit coins, or a custom amount (fewest coins)."""

    pack_id: Annotated[str, AfterValidator(_known_pack), Field(json_schema_extra={"enum": list(catalog.PACK_BY_ID)})] | None = (
        None
    )
    coins: (
        Annotated[dict[str, PositiveCount], AfterValidator(_known_tiers), AfterValidator(_purchasable_coins), TIER_KEYS] | None
    ) = None
    amount_dirhams: Annotated[AmountDirhams, AfterValidator(_custom_amount)] | None = None
    # The gateway (default PURCHASE_GATEWAY_DEFAULT), and for SADAD the payer's contact
    # (else the ID token's).
    gateway: Literal["fatora", "sadad"] | None = None
    email: Email | None = None
    mobile_no: MobileNo | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "PurchaseCreate":
        given = [name for name in ("pack_id", "coins", "amount_dirhams") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of pack_id, coins, amount_dirhams")
        return self

    def coins_to_buy(self) -> dict[str, int]:
        if self.pack_id is not None:
            return dict(catalog.PACK_BY_ID[self.pack_id].coins)
        if self.coins is not None:
            return dict(self.coins)
        assert self.amount_dirhams is not None, "the validator requires one of pack_id, coins, amount_dirhams"
        return catalog.fewest_coins(self.amount_dirhams)


class PurchaseRefund(Body):
    reason: Reason


class PurchaseResolve(Body):
    action: Literal["issue", "refund", "dismiss"]
    note: Reason


class PurchasesPage(Page):
    user_id: DocumentId | None = None


def _printable(text: str) -> str:
    if any(not character.isprintable() for character in text):
        raise ValueError("must be printable text, on one line")
    return text


Milestone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=config.MILESTONE_LENGTH_MAX),
    AfterValidator(_printable),
]
DisputeReason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=config.DISPUTE_REASON_LENGTH_MAX)
]


def _https_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc or any(c.isspace() for c in url):
        raise ValueError("must be an https URL")
    return url


HttpsUrl = Annotated[str, StringConstraints(max_length=config.URL_LENGTH_MAX), AfterValidator(_https_url)]


def _grid_or_zero(amount: int) -> int:
    if amount != 0:
        _on_grid(amount)
    return amount


class JobPayment(Body):
    job_id: DocumentId
    amount_dirhams: AmountDirhams
    # A name of the job's milestone; one open escrow per (job, milestone).
    milestone: Milestone = "1"
    # The job's hired freelancer; when given it must be that one (a check, not a choice).
    freelancer_id: DocumentId | None = None


class Submit(Body):
    note: Reason | None = None


class RequestChanges(Body):
    note: Reason


class RequestRefund(Body):
    reason: Reason


class Release(Body):
    # Part of what is held (on the 5 QAR grid); everything still held when left out.
    amount_dirhams: AmountDirhams | None = None


class Dispute(Body):
    reason: DisputeReason
    evidence_urls: Annotated[list[HttpsUrl], Field(max_length=config.DISPUTE_EVIDENCE_URLS_MAX)] = []


class Resolve(Body):
    # The freelancer's share of what is held: 0 (refund) up to all of it (release).
    freelancer_dirhams: Annotated[int, Field(ge=0), AfterValidator(_grid_or_zero)]
    note: Reason


class EscrowsPage(Page):
    role: Literal["client", "freelancer"] | None = None
    status: EscrowStatus | None = None
    job_id: DocumentId | None = None


class LedgerExport(Query):
    """A period of the ledger: `from` (included) to `to` (excluded), RFC 3339 with a
    zone, at most EXPORT_DAYS_MAX days."""

    start: AwareDatetime = Field(alias="from")
    end: AwareDatetime = Field(alias="to")

    @field_validator("end")
    @classmethod
    def _a_period(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")  # absent when `from` itself was refused
        if start is not None and end <= start:
            raise ValueError("must be after `from`")
        if start is not None and end - start > timedelta(days=config.EXPORT_DAYS_MAX):
            raise ValueError(f"at most {config.EXPORT_DAYS_MAX} days after `from`")
        return end


class FullStep(Body):
    """A task of the full replay: which run to take a step further."""

    run_id: DocumentId


class WindowTimer(Body):
    """What an escrow timer (Cloud Task) carries."""

    escrow_id: DocumentId
    version: Annotated[int, Field(ge=1)] | None = None


def _qatar_iban(iban: str) -> str:
    """Qatar IBANs: QA, two check digits, a 4-letter bank code, 21 alphanumerics (29 in
    all), and the ISO 13616 mod-97 check."""
    iban = iban.replace(" ", "").upper()
    if (
        len(iban) != 29
        or not iban.startswith("QA")
        or not iban[2:4].isdigit()
        or not iban[4:8].isalpha()
        or not iban.isalnum()
        or not iban.isascii()
    ):
        raise ValueError("must be a Qatar IBAN: QA, 2 check digits, a 4-letter bank code and 21 letters or digits")
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:4])
    if int(digits) % 97 != 1:
        raise ValueError("the IBAN's check digits do not match")
    return iban


class BankDestination(Body):
    iban: Annotated[str, AfterValidator(_qatar_iban)]
    account_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=140)]


class WalletDestination(Body):
    wallet_id: Annotated[str, StringConstraints(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9_\-+]+$")]


class WithdrawalCreate(Body):
    """By amount (coins selected as for payments, with change) or by explicit coins."""

    amount_dirhams: AmountDirhams | None = None
    coins: (
        Annotated[dict[str, PositiveCount], AfterValidator(_known_tiers), AfterValidator(_nonempty_coins), TIER_KEYS] | None
    ) = None
    method: Literal["bank_transfer", "wallet"]
    destination: BankDestination | WalletDestination

    @model_validator(mode="after")
    def _consistent(self) -> "WithdrawalCreate":
        if (self.amount_dirhams is None) == (self.coins is None):
            raise ValueError("give exactly one of amount_dirhams, coins")
        expected = BankDestination if self.method == "bank_transfer" else WalletDestination
        if not isinstance(self.destination, expected):
            raise ValueError(f"a {self.method} destination needs {sorted(expected.model_fields)}")
        return self


class KycSubmit(Body):
    full_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=140), AfterValidator(_printable)]
    # A Qatar ID (QID) number: 11 digits.
    qid_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{11}$")]
    # Links to the uploads the app already made (the ID's photos).
    document_urls: Annotated[list[HttpsUrl], Field(min_length=1, max_length=config.KYC_DOCUMENTS_MAX)]


class KycSet(Body):
    # Strict mode would take only enum members from Python input; the body's JSON text is fine.
    status: Annotated[KycStatus, Field(strict=False)]
    note: Reason | None = None


class LiftLimits(Body):
    lift_hours: Annotated[int, Field(ge=1, le=config.LIMIT_LIFT_HOURS_MAX)]
    reason: Reason


class Approve(Body):
    notes: Reason | None = None


class Paid(Body):
    payment_reference: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class Reject(Body):
    reason: Reason
