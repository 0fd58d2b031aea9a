"""The tables in docs/ that mirror the code are the ones the code generates."""

from local import docs


def test_the_escrow_state_table_in_the_docs_is_the_one_escrow_transitions_makes():
    committed = docs.ESCROW_DOC.read_text()
    assert docs.with_table(committed, docs.escrow_table()) == committed, (
        "docs/escrow.md is stale: regenerate it with `make docs` and commit it"
    )


def test_the_purchase_state_table_in_the_docs_is_the_one_purchases_states_makes():
    committed = docs.PAYMENTS_DOC.read_text()
    assert docs.with_table(committed, docs.purchase_table(), "purchases.states.TRANSITIONS") == committed, (
        "docs/payments.md is stale: regenerate it with `make docs` and commit it"
    )
    assert "| hold refund | paid | refunding |" in docs.purchase_table()


def test_the_generated_table_has_a_row_for_every_transition():
    from coins import escrow

    rows = [line for line in docs.escrow_table().splitlines()[2:]]
    assert len(rows) == len(escrow.TRANSITIONS)
    assert "| resolve | admin | disputed | released, refunded or split | escrow_split |" in rows
