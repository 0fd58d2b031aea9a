"""What a person reads when the transition tables refuse: every refusal the escrow and
withdrawal tables can give, walked row by row and state by state, is a written
sentence (no verb assembled from an action's name), and names the state in words."""

import re

import pytest

from coins import catalog, errors, escrow, withdrawals
from coins.auth import Caller
from coins.domain import EscrowStatus, WithdrawalStatus

ACTORS = {
    escrow.Role.CLIENT: escrow.Actor(Caller("the-client")),
    escrow.Role.FREELANCER: escrow.Actor(Caller("the-freelancer")),
    escrow.Role.ADMIN: escrow.Actor(Caller("an-admin", admin=True)),
    escrow.Role.SYSTEM: escrow.SYSTEM,
}
# What string surgery on the actions' names produced ("cannot be releaseed now").
ASSEMBLED = re.compile(r"releaseed|submited|disputeed|changesed|resolveed|request refunded|_")


def escrow_refusals():
    """(role, action, state) for every state a row of the table does not start from."""
    for role in escrow.Role:
        for action in escrow.Action:
            rows = [row for row in escrow.TRANSITIONS if row.role is role and row.action is action]
            if not rows:
                continue
            allowed = {state for row in rows for state in row.from_states}
            for state in EscrowStatus:
                if state not in allowed:
                    yield role, action, state


def a_sentence(message: str) -> None:
    assert message[0].isupper() and message.endswith("."), message
    assert not ASSEMBLED.search(message), message


@pytest.mark.parametrize("role, action, state", list(escrow_refusals()))
def test_every_refusal_of_the_escrow_table_is_a_written_sentence(role, action, state):
    document = {"status": state, "client_id": "the-client", "freelancer_id": "the-freelancer"}
    with pytest.raises(errors.InvalidState) as refused:
        escrow.transition(ACTORS[role], document, action)
    a_sentence(refused.value.message)
    if not (state is EscrowStatus.DISPUTED and action in (escrow.Action.RELEASE, escrow.Action.REFUND)):
        assert escrow.STATE_WORDS[state] in refused.value.message


def test_the_table_refuses_in_the_words_a_person_expects():
    document = {"status": EscrowStatus.RELEASED, "client_id": "the-client", "freelancer_id": "the-freelancer"}
    with pytest.raises(errors.InvalidState) as refused:
        escrow.transition(ACTORS[escrow.Role.CLIENT], document, escrow.Action.RELEASE)
    assert refused.value.message == "This escrow cannot be released now: it is released."
    with pytest.raises(errors.InvalidState) as refused:
        escrow.transition(ACTORS[escrow.Role.CLIENT], {**document, "status": EscrowStatus.FUNDED}, escrow.Action.REQUEST_CHANGES)
    assert refused.value.message == "Changes can be asked for only after the work is submitted; the escrow is funded."
    assert len(list(escrow_refusals())) > 30, "the walk covers the table"


def test_every_party_the_escrow_table_has_no_row_for_is_told_who_may():
    document = {"status": EscrowStatus.FUNDED, "client_id": "the-client", "freelancer_id": "the-freelancer"}
    for action in escrow.Action:
        for role in (escrow.Role.CLIENT, escrow.Role.FREELANCER):
            if any(row.role is role and row.action is action for row in escrow.TRANSITIONS):
                continue
            with pytest.raises(errors.Forbidden) as refused:
                escrow.transition(ACTORS[role], document, action)
            a_sentence(refused.value.message)


@pytest.mark.parametrize(
    "target, state",
    [
        (target, state)
        for target, row in withdrawals.TRANSITIONS.items()
        for state in WithdrawalStatus
        if state not in row.from_states
    ],
)
def test_every_refusal_of_the_withdrawal_table_is_a_written_sentence(target, state):
    message = withdrawals.NOT_NOW[target].format(state=state)
    a_sentence(message)
    assert state in message


@pytest.mark.parametrize(
    "dirhams, text", [(0, "0.00 QAR"), (550, "5.50 QAR"), (12_100, "121.00 QAR"), (100_050, "1,000.50 QAR"), (-500, "-5.00 QAR")]
)
def test_amounts_in_messages_are_qar_with_two_decimals(dirhams, text):
    assert catalog.in_qar(dirhams) == text
