"""The catalog's money rules: worked examples from DESIGN.md, and coin selection checked
against a brute-force oracle over random inventories and amounts."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coins import catalog
from coins.catalog import SYMBOLS, select, value_dirhams

QAR = catalog.DIRHAMS_PER_QAR


def test_tiers_have_the_values_of_the_design():
    assert {t.symbol: t.value_dirhams // QAR for t in catalog.TIERS} == {
        "GBC": 5,
        "GSC": 10,
        "GGC": 50,
        "GPC": 100,
        "GDC": 200,
        "GRC": 500,
    }


def test_six_packs_of_one_coin_each_from_starter_to_elite():
    assert [p.id for p in catalog.PACKS][0] == "starter" and catalog.PACKS[-1].id == "elite"
    assert [list(p.coins.items()) for p in catalog.PACKS] == [[(s, 1)] for s in SYMBOLS]


@pytest.mark.parametrize("value_qar, price_dirhams", [(5, 550), (10, 1100), (500, 55000)])
def test_price_is_value_plus_ten_percent(value_qar, price_dirhams):
    assert catalog.price_dirhams(value_qar * QAR) == price_dirhams


@pytest.mark.parametrize("price, fee", [(550, 14), (1100, 28), (55000, 1375), (400, 10), (420, 11)])
def test_gateway_fee_is_two_and_a_half_percent_rounded_half_up(price, fee):
    # 550 * 2.5 % = 13.75 -> 14; 420 * 2.5 % = 10.5 -> 11.
    assert catalog.gateway_fee_dirhams(price) == fee


@pytest.mark.parametrize(
    "amount_qar, fee_qar",
    [(25, 0), (35, 5), (100, 10), (75, 5), (5, 0), (15, 0), (45, 5), (50, 5), (55, 5), (65, 5), (125, 10), (1000, 100)],
)
def test_job_fee_is_ten_percent_on_the_grid_exact_halves_down(amount_qar, fee_qar):
    assert catalog.job_fee_dirhams(amount_qar * QAR) == fee_qar * QAR


@settings(deadline=None)  # a CPU stall on CI is no failure of the property
@given(st.integers(min_value=1, max_value=20_000))
def test_job_fee_is_the_nearest_grid_step_to_ten_percent(steps):
    amount = steps * catalog.GRID_DIRHAMS
    fee = catalog.job_fee_dirhams(amount)
    exact = amount * catalog.JOB_FEE_BPS / catalog.BPS_DENOMINATOR  # only to state the property
    assert fee % catalog.GRID_DIRHAMS == 0
    assert abs(fee - exact) <= catalog.GRID_DIRHAMS / 2
    if abs(fee - exact) == catalog.GRID_DIRHAMS / 2:
        assert fee < exact, "an exact half rounds down, in the freelancer's favour"


def test_the_seeds_failing_case_600_from_one_royal_and_three_diamonds_is_paid_exactly():
    selection = select({"GRC": 1, "GDC": 3}, 600 * QAR)
    assert selection == catalog.Selection(pay={"GDC": 3}, change={})


def test_a_payment_without_an_exact_combination_takes_the_smallest_overpayment_and_makes_change():
    selection = select({"GRC": 1}, 100 * QAR)
    assert selection.pay == {"GRC": 1}
    assert selection.change == {"GDC": 2}


def test_ties_in_coin_count_prefer_spending_larger_tiers():
    # 600 QAR in three coins either way: GRC + 2 GGC, or 3 GDC. The Royal goes first.
    assert select({"GRC": 1, "GGC": 2, "GDC": 3}, 600 * QAR).pay == {"GGC": 2, "GRC": 1}


def test_fewer_coins_beat_larger_tiers():
    # 60 QAR: GGC + GSC (2 coins) beats GGC + 2 GBC (3).
    assert select({"GGC": 1, "GSC": 1, "GBC": 2}, 60 * QAR).pay == {"GSC": 1, "GGC": 1}


def test_a_short_balance_selects_nothing():
    assert select({"GPC": 1}, 105 * QAR) is None


def test_custom_packs_use_the_fewest_coins():
    assert catalog.fewest_coins(5000 * QAR) == {"GRC": 10}
    assert catalog.fewest_coins(655 * QAR) == {"GBC": 1, "GGC": 1, "GPC": 1, "GRC": 1}
    assert catalog.fewest_coins(15 * QAR) == {"GBC": 1, "GSC": 1}


def test_the_catalog_lists_tiers_packs_pricing_and_gateways():
    described = catalog.describe(("fatora", "sadad"), "sadad")
    assert described["gateways"] == ["fatora", "sadad"] and described["default_gateway"] == "sadad"
    assert catalog.describe(("fatora",), "sadad")["default_gateway"] is None, "a default not offered is not announced"
    assert [c["symbol"] for c in described["coins"]] == list(SYMBOLS)
    elite = described["packs"][-1]
    assert elite == {"id": "elite", "name": "Elite", "coins": {"GRC": 1}, "value_dirhams": 50000, "price_dirhams": 55000}
    assert described["pricing"]["custom_min_dirhams"] == 500
    assert described["pricing"]["custom_max_dirhams"] == 500000


# The oracle: every sub-multiset of a small inventory, ranked by the rules of DESIGN.md.


def _units(coins):
    return value_dirhams(coins) // catalog.GRID_DIRHAMS


def _preference(counts):
    # Fewest coins, then most of the largest tier, then of the next, and so on.
    return (sum(counts), [-c for c in reversed(counts)])


def oracle(inventory, amount):
    supply = [inventory.get(s, 0) for s in SYMBOLS]
    target = amount // catalog.GRID_DIRHAMS
    best = None
    for counts in itertools.product(*(range(n + 1) for n in supply)):
        paid = _units(dict(zip(SYMBOLS, counts)))
        if paid < target:
            continue
        rank = (paid - target, _preference(counts))
        if best is None or rank < best[0]:
            best = (rank, counts)
    if best is None:
        return None
    return catalog.normalize(dict(zip(SYMBOLS, best[1])))


def fewest_unbounded_oracle(amount):
    units = amount // catalog.GRID_DIRHAMS
    unit_values = [t.value_dirhams // catalog.GRID_DIRHAMS for t in catalog.TIERS]
    best = [0] + [None] * units
    for total in range(1, units + 1):
        options = [best[total - u] + 1 for u in unit_values if u <= total and best[total - u] is not None]
        best[total] = min(options)
    return best[units]


inventories = st.fixed_dictionaries({s: st.integers(min_value=0, max_value=3) for s in SYMBOLS})


@settings(max_examples=300, deadline=None)
@given(inventories, st.integers(min_value=1, max_value=600))
def test_selection_matches_the_brute_force_oracle(inventory, steps):
    amount = steps * catalog.GRID_DIRHAMS
    selection = select(inventory, amount)
    expected = oracle(inventory, amount)
    if expected is None:
        assert selection is None
        assert value_dirhams(inventory) < amount
        return
    assert selection is not None, "any grid amount up to the balance can be paid"
    assert selection.pay == expected, "fewest coins at the smallest overpayment, larger tiers first"
    assert all(selection.pay[s] <= inventory.get(s, 0) for s in selection.pay), "only coins the payer has"
    assert value_dirhams(selection.pay) - value_dirhams(selection.change) == amount, "pay - change == amount"
    assert sum(selection.change.values()) == fewest_unbounded_oracle(value_dirhams(selection.change))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2000))
def test_fewest_coins_is_minimal_and_exact(steps):
    amount = steps * catalog.GRID_DIRHAMS
    coins = catalog.fewest_coins(amount)
    assert value_dirhams(coins) == amount
    assert sum(coins.values()) == fewest_unbounded_oracle(amount)
