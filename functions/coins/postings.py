"""Double entry, pure: postings, journal entries, the rules every entry obeys, the
posting builders the operations share, and the conservation invariant. No I/O.

A posting moves a positive count of one tier from one account to another, so every
tier of every entry sums to zero, and so does every tier over all accounts at all times
(the treasury is the negative of everything outstanding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from . import catalog, errors
from .domain import TREASURY, Account, EntryType


@dataclass(frozen=True)
class Posting:
    """`count` coins of `tier` move from one account to another."""

    tier: str
    count: int
    source: Account
    destination: Account
    # Change made by the treasury inside a payment (coins broken into smaller ones).
    change: bool = False

    def stored(self) -> dict[str, Any]:
        """As kept in `ledger/{id}.postings`."""
        return {
            "tier": self.tier,
            "count": self.count,
            "from": str(self.source),
            "to": str(self.destination),
            "change": self.change,
        }


@dataclass(frozen=True)
class Entry:
    type: EntryType
    postings: tuple[Posting, ...]
    refs: Mapping[str, str] = field(default_factory=dict)
    memo: Mapping[str, Any] = field(default_factory=dict)
    # Users the entry concerns beyond those whose wallets it moves (for notifications):
    # a freelancer when the client's coins are locked for their job.
    parties: tuple[str, ...] = ()


Balances = dict[Account, dict[str, int]]


def deltas(entry: Entry) -> Balances:
    """Signed per-tier changes per account. Asserts what every entry must be: of a known
    type, non-empty, made of positive counts between two different accounts, and
    balanced in every tier."""
    assert isinstance(entry.type, EntryType), entry.type
    assert entry.postings, "an entry moves something"
    changes: Balances = {}
    for posting in entry.postings:
        assert posting.tier in catalog.TIER_BY_SYMBOL, posting.tier
        assert isinstance(posting.count, int) and posting.count > 0, posting
        assert posting.source != posting.destination, posting
        _add(changes, posting.source, posting.tier, -posting.count)
        _add(changes, posting.destination, posting.tier, posting.count)
    assert not tier_sums(changes), "unbalanced entry"
    return changes


def non_negative(account: Account, before: Mapping[str, int], delta: Mapping[str, int]) -> dict[str, int]:
    """`before + delta`, refused with InsufficientFunds if any tier would go below zero."""
    after = catalog.add(before, delta)
    negative = {symbol: count for symbol, count in after.items() if count < 0}
    if negative:
        shortfall = -sum(catalog.TIER_BY_SYMBOL[s].value_dirhams * c for s, c in negative.items())
        raise errors.InsufficientFunds(account=str(account), missing_coins=negative, shortfall_dirhams=shortfall)
    return after


# Builders.


def transfer(source: Account, destination: Account, coins: Mapping[str, int], *, change: bool = False) -> tuple[Posting, ...]:
    return tuple(Posting(s, c, source, destination, change) for s, c in catalog.normalize(coins).items())


def issue(uid: str, coins: Mapping[str, int]) -> tuple[Posting, ...]:
    """Coins enter circulation: treasury -> user."""
    return transfer(TREASURY, Account.user(uid), coins)


def retire(uid: str, coins: Mapping[str, int]) -> tuple[Posting, ...]:
    """Coins leave circulation: user -> treasury."""
    return transfer(Account.user(uid), TREASURY, coins)


def pay(
    source: Account, destination: Account, held: Mapping[str, int], amount_dirhams: int, *, change_to: Account | None = None
) -> tuple[tuple[Posting, ...], dict[str, int]]:
    """Postings that move exactly `amount_dirhams` from `source` (holding `held`) to
    `destination`, and the coins taken from `source`. Coins are chosen by the catalog's
    selection; when no exact combination exists the treasury makes change: it takes the
    coins, gives the destination the fewest coins of the amount and `change_to` (the
    source unless said otherwise) the difference. Value is conserved exactly."""
    if amount_dirhams == 0:
        return (), {}
    selection = catalog.select(held, amount_dirhams)
    if selection is None:
        balance = catalog.value_dirhams(held)
        raise errors.InsufficientFunds(balance_dirhams=balance, shortfall_dirhams=amount_dirhams - balance)
    if not selection.change:
        return transfer(source, destination, selection.pay), selection.pay
    postings = (
        transfer(source, TREASURY, selection.pay, change=True)
        + transfer(TREASURY, destination, catalog.fewest_coins(amount_dirhams), change=True)
        + transfer(TREASURY, change_to or source, selection.change, change=True)
    )
    return postings, selection.pay


def net(postings: Iterable[Posting], account: Account) -> dict[str, int]:
    """What these postings add to `account` (negative counts: what they take from it)."""
    coins: dict[str, int] = {}
    for posting in postings:
        for side, sign in ((posting.destination, 1), (posting.source, -1)):
            if side == account:
                coins[posting.tier] = coins.get(posting.tier, 0) + sign * posting.count
    return {tier: count for tier, count in catalog.normalize(coins).items() if count}


def received(postings: Iterable[Posting], account: Account) -> dict[str, int]:
    """The coins `account` receives from these postings."""
    coins: dict[str, int] = {}
    for posting in postings:
        if posting.destination == account:
            coins[posting.tier] = coins.get(posting.tier, 0) + posting.count
    return catalog.normalize(coins)


# Balances from stored entries, and the invariant.


def add_postings(balances: Balances, stored_postings: Iterable[Mapping[str, Any]]) -> Balances:
    """Adds stored postings (`{"tier", "count", "from", "to"}`) to per-account balances."""
    for posting in stored_postings:
        _add(balances, Account.parse(posting["from"]), posting["tier"], -posting["count"])
        _add(balances, Account.parse(posting["to"]), posting["tier"], posting["count"])
    return balances


def conservation_problems(balances: Balances) -> list[dict[str, Any]]:
    """What breaks the ledger's invariant in a replay: a tier that does not sum to zero
    over all accounts, or an account other than the treasury below zero in some tier."""
    problems: list[dict[str, Any]] = [
        {"kind": "tier_not_balanced", "tier": tier, "sum": total} for tier, total in tier_sums(balances).items()
    ]
    for account, tiers in sorted(balances.items()):
        negative = {tier: count for tier, count in tiers.items() if count < 0}
        if negative and account != TREASURY:
            problems.append({"kind": "negative_balance", "account": str(account), "coins": negative})
    return problems


def tier_sums(balances: Balances) -> dict[str, int]:
    """Tiers whose counts do not sum to zero over all accounts, with their sums."""
    sums = {symbol: sum(tiers.get(symbol, 0) for tiers in balances.values()) for symbol in catalog.SYMBOLS}
    return {symbol: total for symbol, total in sums.items() if total}


def _add(balances: Balances, account: Account, tier: str, count: int) -> None:
    tiers = balances.setdefault(account, {})
    tiers[tier] = tiers.get(tier, 0) + count
