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
BEGIN, END = "<!-- generated from escrow.TRANSITIONS by make docs -->", "<!-- end of the generated table -->"


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


def with_table(text: str, table: str) -> str:
    """`text` with the block between the markers replaced by `table`."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    assert pattern.search(text), f"{ESCROW_DOC} has no generated block"
    return pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text)


def main() -> None:
    sys.path.insert(0, str(ROOT / "functions"))
    ESCROW_DOC.write_text(with_table(ESCROW_DOC.read_text(), escrow_table()))


if __name__ == "__main__":
    main()
