"""Tables in docs/ that mirror the code, generated from it (`make docs`); a test fails
while the committed ones are stale (tests/unit/test_docs.py).

    python -m local.docs          (or: make docs)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ESCROW_DOC = ROOT / "docs" / "escrow.md"
PAYMENTS_DOC = ROOT / "docs" / "payments.md"
END = "<!-- end of the generated table -->"


def begin(source: str) -> str:
    return f"<!-- generated from {source} by make docs -->"


def escrow_table() -> str:
    """One row per row of `escrow.TRANSITIONS`: who may do what from which states."""
    from coins import escrow

    def words(name: str) -> str:
        return name.replace("_", " ")

    lines = ["| action | who | from | to | ledger entry |", "|---|---|---|---|---|"]
    for row in escrow.TRANSITIONS:
        # Where the table leaves it to the amounts (`to` None): a release or a resolution.
        decided = (
            "released, or unchanged by a partial release"
            if row.action is escrow.Action.RELEASE
            else "released, refunded or split"
        )
        to = row.to or decided
        states = "any open state" if row.from_states == escrow.OPEN else ", ".join(row.from_states)
        who = "system (a window ends)" if row.role is escrow.Role.SYSTEM else row.role
        lines.append(f"| {words(row.action)} | {who} | {states} | {to} | {row.entry or ''} |")
    return "\n".join(lines)


def purchase_table() -> str:
    """One row per step of the purchase's table (`purchases.states.TRANSITIONS`)."""
    from coins.purchases import states

    lines = ["| step | from | to |", "|---|---|---|"]
    for step, row in states.TRANSITIONS.items():
        lines.append(f"| {step.replace('_', ' ')} | {', '.join(row.from_states)} | {row.to_state} |")
    return "\n".join(lines)


# Each generated table: its document, the code it mirrors, how it is made.
TABLES = (
    (ESCROW_DOC, "escrow.TRANSITIONS", escrow_table),
    (PAYMENTS_DOC, "purchases.states.TRANSITIONS", purchase_table),
)


def with_table(text: str, table: str, source: str = "escrow.TRANSITIONS") -> str:
    """`text` with the block between the markers of `source` replaced by `table`."""
    pattern = re.compile(re.escape(begin(source)) + r".*?" + re.escape(END), re.S)
    assert pattern.search(text), f"no generated block of {source}"
    return pattern.sub(lambda _: f"{begin(source)}\n{table}\n{END}", text)


def main() -> None:
    sys.path.insert(0, str(ROOT / "functions"))
    for doc, source, table in TABLES:
        doc.write_text(with_table(doc.read_text(), table(), source))


if __name__ == "__main__":
    main()
