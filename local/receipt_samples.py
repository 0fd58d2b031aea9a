"""Renders sample receipts to PNG for docs/ (what a person sees), through pdftoppm
(Debian's poppler-utils), from documents shaped as the code writes them:

    .venv/bin/python -m local.receipt_samples        (writes docs/receipt-en.png, docs/receipt-ar.png)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

from coins import receipts  # noqa: E402

PURCHASE = {
    "id": "3ac8d224aaa70edb94db",
    "user_id": "alice",
    "payer": {"name": "Alice A", "email": "alice@example.com"},
    "status": "refunded",
    "gateway": "sadad",
    "gateway_reference": "SD-20261103-884512",
    "coins": {"GGC": 2, "GSC": 1, "GBC": 1},
    "value_dirhams": 11500,
    "price_dirhams": 12650,
    "paid_at": datetime(2026, 11, 3, 18, 1, 2, tzinfo=timezone.utc),
    "entry_id": "a8Lm0",
    "refunded_at": datetime(2026, 11, 5, 9, 30, tzinfo=timezone.utc),
}


def png(pdf: bytes, out: Path, *, dpi: int = 80) -> None:
    """The first page of `pdf` as a PNG at `out`."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "page.pdf"
        source.write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile", str(source), str(out.with_suffix(""))],
            check=True,
        )


def main() -> None:
    for language in ("en", "ar"):
        out = ROOT / "docs" / f"receipt-{language}.png"
        png(receipts.purchase_pdf(PURCHASE, language), out)
        print(out.relative_to(ROOT))


if __name__ == "__main__":
    main()
