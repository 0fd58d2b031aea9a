"""Coin tiers, packs, pricing and coin selection. Pure: no I/O, no clock, no floats.

All money is an integer number of dirhams (1 QAR = 100 dirhams). Every payable amount
is on the 5 QAR grid (GRID_DIRHAMS), which is also the value of the smallest coin, so
inside this module amounts are often counted in grid units to keep the arithmetic small.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

DIRHAMS_PER_QAR = 100
# The smallest coin, and the step of every payable amount.
GRID_DIRHAMS = 500

BPS_DENOMINATOR = 10_000
# Purchase price = coin value + 10 %.
MARKUP_BPS = 1_000
# The gateway's fee on the price (DESIGN: 2.5 %, for Fatora and SADAD alike; SADAD
# publishes no rate); the platform absorbs it and records it for accounting.
GATEWAY_FEE_BPS = 250
# The platform's share of a released escrow, rounded to the grid.
JOB_FEE_BPS = 1_000

# Custom purchases: 5 to 5000 QAR. The upper bound caps what one card payment can buy.
CUSTOM_MIN_DIRHAMS = 5 * DIRHAMS_PER_QAR
CUSTOM_MAX_DIRHAMS = 5_000 * DIRHAMS_PER_QAR


@dataclass(frozen=True)
class Tier:
    symbol: str
    name: str
    value_dirhams: int
    color: str
    icon: str


# Smallest first. The order is the canonical order of every coin map this project writes.
TIERS: tuple[Tier, ...] = (
    Tier("GBC", "GUILD Bronze Coin", 5 * DIRHAMS_PER_QAR, "#CD7F32", "coin-bronze"),
    Tier("GSC", "GUILD Silver Coin", 10 * DIRHAMS_PER_QAR, "#C0C0C0", "coin-silver"),
    Tier("GGC", "GUILD Gold Coin", 50 * DIRHAMS_PER_QAR, "#FFD700", "coin-gold"),
    Tier("GPC", "GUILD Platinum Coin", 100 * DIRHAMS_PER_QAR, "#E5E4E2", "coin-platinum"),
    Tier("GDC", "GUILD Diamond Coin", 200 * DIRHAMS_PER_QAR, "#B9F2FF", "coin-diamond"),
    Tier("GRC", "GUILD Royal Coin", 500 * DIRHAMS_PER_QAR, "#7851A9", "coin-royal"),
)
TIER_BY_SYMBOL: dict[str, Tier] = {tier.symbol: tier for tier in TIERS}
SYMBOLS: tuple[str, ...] = tuple(tier.symbol for tier in TIERS)
_UNITS = tuple(tier.value_dirhams // GRID_DIRHAMS for tier in TIERS)

assert all(tier.value_dirhams % GRID_DIRHAMS == 0 for tier in TIERS)
assert _UNITS[0] == 1, "the smallest coin must be the grid step, so every grid amount is payable"


@dataclass(frozen=True)
class Pack:
    id: str
    name: str
    coins: dict[str, int]


# One pack per tier, one coin each, smallest first.
PACKS: tuple[Pack, ...] = tuple(
    Pack(pack_id, pack_id.capitalize(), {symbol: 1})
    for pack_id, symbol in zip(("starter", "basic", "plus", "pro", "premium", "elite"), SYMBOLS)
)
PACK_BY_ID: dict[str, Pack] = {pack.id: pack for pack in PACKS}

Coins = dict[str, int]


def normalize(coins: Mapping[str, int]) -> Coins:
    """Canonical coin map: known tiers only, in tier order, zero counts omitted."""
    unknown = set(coins) - set(SYMBOLS)
    assert not unknown, f"unknown tiers {sorted(unknown)}"
    return {symbol: coins[symbol] for symbol in SYMBOLS if coins.get(symbol, 0) != 0}


def dirhams_of(amount: Any) -> int | None:
    """A gateway's decimal QAR amount (a JSON number, read as Decimal, or text) in
    dirhams, or None if it is not an exact number of dirhams."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float, str, Decimal)):
        return None
    try:
        # str() first: a float such as 5.5 becomes the decimal "5.5", not its binary value.
        dirhams = Decimal(str(amount)) * 100
    except InvalidOperation:
        return None
    if not dirhams.is_finite() or dirhams != dirhams.to_integral_value():
        return None
    return int(dirhams)


def in_qar(amount_dirhams: int) -> str:
    """An amount as a person reads it in a message: 100050 -> "1,000.50 QAR"."""
    whole, cents = divmod(abs(amount_dirhams), 100)
    return f"{'-' if amount_dirhams < 0 else ''}{whole:,}.{cents:02d} QAR"


def value_dirhams(coins: Mapping[str, int]) -> int:
    return sum(TIER_BY_SYMBOL[symbol].value_dirhams * count for symbol, count in coins.items())


def add(a: Mapping[str, int], b: Mapping[str, int], sign: int = 1) -> Coins:
    return normalize({symbol: a.get(symbol, 0) + sign * b.get(symbol, 0) for symbol in SYMBOLS})


def is_on_grid(amount_dirhams: int) -> bool:
    return amount_dirhams > 0 and amount_dirhams % GRID_DIRHAMS == 0


# Pricing.


def price_dirhams(value: int) -> int:
    """What the buyer pays for coins worth `value`: value + markup (exact on the grid)."""
    price, remainder = divmod(value * (BPS_DENOMINATOR + MARKUP_BPS), BPS_DENOMINATOR)
    assert remainder == 0, "prices of grid amounts are whole dirhams"
    return price


def gateway_fee_dirhams(price: int) -> int:
    """The gateway's fee on a price, rounded half up to the dirham (2.5 % of 5.50 QAR is 13.75)."""
    return (2 * price * GATEWAY_FEE_BPS + BPS_DENOMINATOR) // (2 * BPS_DENOMINATOR)


def job_fee_dirhams(amount: int) -> int:
    """The platform's fee on a released escrow: JOB_FEE_BPS of the amount, to the nearest
    grid step, an exact half rounding down (in the freelancer's favour)."""
    denominator = BPS_DENOMINATOR * GRID_DIRHAMS
    steps, remainder = divmod(amount * JOB_FEE_BPS, denominator)
    if 2 * remainder > denominator:
        steps += 1
    return steps * GRID_DIRHAMS


def pricing() -> dict[str, int]:
    return {
        "markup_bps": MARKUP_BPS,
        "job_fee_bps": JOB_FEE_BPS,
        "gateway_fee_bps": GATEWAY_FEE_BPS,
        "custom_min_dirhams": CUSTOM_MIN_DIRHAMS,
        "custom_max_dirhams": CUSTOM_MAX_DIRHAMS,
    }


# Coin selection.


def fewest_coins(amount_dirhams: int) -> Coins:
    """The fewest coins worth exactly `amount_dirhams` from an unlimited supply (the
    treasury's view: custom packs and change). Ties prefer larger tiers."""
    assert amount_dirhams >= 0 and amount_dirhams % GRID_DIRHAMS == 0
    units = amount_dirhams // GRID_DIRHAMS
    # Unlimited supply is as many of each tier as the amount allows. The DP then stays
    # exact even for a tier set on which greedy change would not be.
    supply = [units // unit for unit in _UNITS]
    counts = _CoinTable(units, supply).exact(units)
    assert counts is not None
    return _coins(counts)


@dataclass(frozen=True)
class Selection:
    """Coins to take from a payer for an amount, and the change the treasury returns."""

    pay: Coins
    change: Coins


def select(inventory: Mapping[str, int], amount_dirhams: int) -> Selection | None:
    """Coins from `inventory` that pay `amount_dirhams`, or None if the balance is short.

    An exact combination with the fewest coins when one exists (ties prefer spending
    larger tiers); otherwise the smallest overpayment, again in the fewest coins, with
    the difference returned as change in the fewest coins. Because the smallest coin is
    the grid step, any grid amount up to the balance can be paid.
    """
    assert is_on_grid(amount_dirhams)
    if value_dirhams(inventory) < amount_dirhams:
        return None
    target = amount_dirhams // GRID_DIRHAMS
    supply = [inventory.get(symbol, 0) for symbol in SYMBOLS]
    # An overpayment never reaches target + the largest coin: dropping any coin of such
    # a selection would still cover the amount, so a smaller overpayment would exist.
    table = _CoinTable(target + max(_UNITS) - 1, supply)
    for paid in range(target, target + max(_UNITS)):
        counts = table.exact(paid)
        if counts is not None:
            return Selection(pay=_coins(counts), change=fewest_coins((paid - target) * GRID_DIRHAMS))
    raise AssertionError("a balance that covers the amount always has a covering selection")


def _coins(counts: list[int]) -> Coins:
    return normalize(dict(zip(SYMBOLS, counts)))


class _CoinTable:
    """Fewest coins for every amount up to `units_max` grid steps, within `supply`.

    Bounded knapsack by binary splitting, one DP layer per prefix of tiers (smallest
    first), so that a reconstruction can walk from the largest tier down and take as many
    of it as still allows an optimal completion: fewest coins, then most of the largest
    tiers. O(tiers x log(count) x units_max) time and tiers x units_max memory.
    """

    def __init__(self, units_max: int, supply: list[int]) -> None:
        self.supply = supply
        self.impossible = units_max + 1  # more coins than any exact selection needs
        self.layers: list[list[int]] = []
        best = [0] + [self.impossible] * units_max
        for unit, count in zip(_UNITS, supply):
            best = best[:]
            remaining, chunk = min(count, units_max // unit), 1
            while remaining > 0:
                take = min(chunk, remaining)
                step = take * unit
                for amount in range(units_max, step - 1, -1):
                    candidate = best[amount - step] + take
                    if candidate < best[amount]:
                        best[amount] = candidate
                remaining -= take
                chunk *= 2
            self.layers.append(best)

    def exact(self, units: int) -> list[int] | None:
        """Counts per tier summing to exactly `units`, or None if impossible."""
        coins_left = self.layers[-1][units]
        if coins_left >= self.impossible:
            return None
        counts = [0] * len(_UNITS)
        amount = units
        for tier in range(len(_UNITS) - 1, -1, -1):
            unit = _UNITS[tier]
            for take in range(min(self.supply[tier], amount // unit, coins_left), -1, -1):
                rest = amount - take * unit
                rest_coins = self.layers[tier - 1][rest] if tier > 0 else (0 if rest == 0 else self.impossible)
                if take + rest_coins == coins_left:
                    counts[tier] = take
                    amount, coins_left = rest, rest_coins
                    break
        assert amount == 0 and coins_left == 0
        return counts


def describe(gateways: tuple[str, ...], default_gateway: str) -> dict:
    """The public catalog, as API.md shows it, with the gateways a purchase may name
    (`gateways`; `default_gateway` when it names none, if offered)."""
    return {
        "gateways": list(gateways),
        "default_gateway": default_gateway if default_gateway in gateways else None,
        "coins": [
            {"symbol": t.symbol, "name": t.name, "value_dirhams": t.value_dirhams, "color": t.color, "icon": t.icon}
            for t in TIERS
        ],
        "packs": [
            {
                "id": p.id,
                "name": p.name,
                "coins": p.coins,
                "value_dirhams": value_dirhams(p.coins),
                "price_dirhams": price_dirhams(value_dirhams(p.coins)),
            }
            for p in PACKS
        ],
        "pricing": pricing(),
    }
