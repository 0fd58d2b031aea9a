"""The one table of deployable functions, as the decorators fill it."""

import pytest

from coins import registry
from coins.api import Access, endpoint


def test_schedules_say_what_they_mean():
    assert registry.every(15) == registry.Schedule("*/15 * * * *", "Asia/Qatar")
    assert registry.daily_at("02:30") == registry.Schedule("30 2 * * *", "Asia/Qatar")
    with pytest.raises(AssertionError):
        registry.every(7)


def test_the_table_holds_every_function_once_in_the_order_main_declares_them():
    functions = registry.functions()
    names = [function.name for function in functions]
    assert len(names) == len(set(names))
    assert names[:3] == ["coins_catalog", "coins_openapi", "coins_wallet"]
    assert {f.name: f.document_pattern for f in registry.triggers()} == {
        "ledger_on_create": "ledger/{entryId}",
        "outbox_on_create": "outbox/{eventId}",
    }
    assert {f.name for f in registry.scheduled()} == {
        "purchases_reconcile",
        "escrows_sweep",
        "coins_repair",
        "reconcile_daily",
        "reconcile_monthly",
    }
    assert all(f.kind is registry.Kind.PRIVATE for f in registry.scheduled())


def test_only_a_private_function_can_be_scheduled():
    with pytest.raises(AssertionError):
        endpoint("POST", access=Access.ADMIN, schedule=registry.every(15))
