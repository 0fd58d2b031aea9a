"""Structured logs: JSON lines that Cloud Logging parses, one per request and one per
money movement, carrying the request's trace and never a token or a body."""

import json

from local.tokens import mint
from tests.money import fresh_id


def log_lines(captured: str) -> list[dict]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


def test_a_money_request_logs_its_movement_and_itself_with_the_trace(api, capsys):
    alice = fresh_id()
    token = mint("ops", admin=True)
    capsys.readouterr()
    response = api.call(
        "admin_adjust_balance",
        "POST",
        token=token,
        key="log-1",
        body={"user_id": alice, "coins": {"GPC": 1}, "reason": "IBAN QA58DOHB00001234567890ABCDEFG"},
        headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"},
    )
    assert response.status_code == 200
    captured = capsys.readouterr().out
    lines = log_lines(captured)
    movement, request = lines[-2], lines[-1]
    trace = "projects/demo-guild/traces/105445aa7843bc8bf206b12000100000"
    assert movement["severity"] == "INFO"
    assert movement["message"] == "ledger entry"
    assert movement["entry_id"] == response.get_json()["entry_id"]
    assert movement["logging.googleapis.com/trace"] == trace
    assert request["message"] == "POST admin_adjust_balance 200"
    assert (request["function"], request["status"], request["severity"]) == ("admin_adjust_balance", 200, "INFO")
    assert isinstance(request["latency_ms"], float)
    assert request["logging.googleapis.com/trace"] == trace
    assert token not in captured
    assert "QA58DOHB" not in captured, "bodies are never logged"


def test_a_refused_request_logs_a_warning_with_its_error_code(api, capsys):
    capsys.readouterr()
    api.call("coins_wallet", token="garbage")
    request = log_lines(capsys.readouterr().out)[-1]
    assert request["severity"] == "WARNING"
    assert (request["status"], request["error_code"]) == (401, "unauthenticated")
    assert "garbage" not in json.dumps(request)
