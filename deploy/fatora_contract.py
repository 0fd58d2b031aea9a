"""A contract check against the real Fatora (not part of `make test`): what Fatora
answers today, field by field, next to what coins/fatora.py expects.

    FATORA_API_KEY=<a test-mode key> FATORA_BASE_URL=https://api.fatora.io/v1 make fatora-contract

It opens one checkout of 1.00 QAR (test mode: no money moves), verifies it by order id
alone and, when Fatora names a transaction, by both ids, and prints every field. Run it
before the first deploy and whenever Fatora changes its API. Without a key it exits 2.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "functions"))

# field -> what the client expects of it (coins/fatora.py).
EXPECTED = {
    "checkout": {"status": "SUCCESS", "result.checkout_url": "an http(s) URL"},
    "verify": {
        "status": "SUCCESS",
        "result.order_id": "our order id",
        "result.payment_status": "SUCCESS | PENDING | FAILURE",
        "result.amount": "a JSON number, the price in QAR",
        "result.currency": "QAR",
        "result.mode": "test | live",
        "result.transaction_id": "a string once paid",
    },
}


def flatten(value, prefix=""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from flatten(inner, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, value


def show(call: str, text: str) -> dict:
    print(f"\n== {call}: Fatora answered")
    try:
        payload = json.loads(text, parse_float=Decimal)
    except ValueError:
        print(f"   not JSON: {text[:300]!r}")
        return {}
    expected = EXPECTED["checkout" if call == "checkout" else "verify"]
    seen = dict(flatten(payload))
    for field in sorted(set(seen) | set(expected)):
        value = seen.get(field, "(absent)")
        kind = type(value).__name__ if field in seen else ""
        print(f"   {field:28} {str(value)[:60]:62} {kind:8} expects: {expected.get(field, '-')}")
    return payload


def main() -> None:
    key, base = os.environ.get("FATORA_API_KEY"), os.environ.get("FATORA_BASE_URL")
    if not key or not base:
        print(
            "Set FATORA_API_KEY (a test-mode key from Fatora's dashboard) and FATORA_BASE_URL "
            "(https://api.fatora.io/v1) to check the contract against the real Fatora.",
            file=sys.stderr,
        )
        sys.exit(2)
    import requests

    from coins.fatora import FatoraClient, FatoraError

    answers: list[str] = []

    class Recording(requests.Session):
        def post(self, *args, **kwargs):
            response = super().post(*args, **kwargs)
            answers.append(response.text)
            return response

    client = FatoraClient(base, key, session=Recording())
    order_id = f"contract{uuid.uuid4().hex[:12]}"
    steps = [
        (
            "checkout",
            lambda: client.checkout(
                order_id=order_id,
                amount_dirhams=100,
                client={"name": "GUILD contract check", "phone": "", "email": ""},
                language="en",
                success_url="https://example.invalid/return",
                failure_url="https://example.invalid/return",
                note="contract check",
            ),
        ),
        ("verify by order id", lambda: client.verify(order_id)),
    ]
    results = {}
    for name, step in steps:
        try:
            results[name] = step()
            print(f"\n-> the client read: {results[name]}")
        except FatoraError as error:
            print(f"\n-> the client refused the answer: {type(error).__name__}: {error}")
        if answers:
            show(name, answers.pop())
    transaction = getattr(results.get("verify by order id"), "transaction_id", None)
    if transaction:
        try:
            print(f"\n-> the client read: {client.verify(order_id, transaction)}")
        except FatoraError as error:
            print(f"\n-> the client refused the answer: {type(error).__name__}: {error}")
        show("verify by both ids", answers.pop())
    else:
        print(
            "\n== verify by both ids: Fatora named no transaction for the unpaid order; pay the checkout page in test mode and "
            f"run verify again with its transaction id (order {order_id})."
        )


if __name__ == "__main__":
    main()
