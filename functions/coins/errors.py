"""The one exception tree, and with it the one table from error to HTTP status and code.

Every error's code, status and default message live here; where a module refuses in
words of its own (the transition tables' sentences), it passes them with the error. An
error's `details` must never carry a
token, a bank detail or a request body: they are returned to callers and logged.
"""

from __future__ import annotations

from typing import Any


class CoinsError(Exception):
    status: int = 500
    code: str = "internal"
    message: str = "Something went wrong on our side."
    # A final answer is stored under the request's idempotency key and replayed; a
    # transient one (503) is not, so that a retry with the same key does the work.
    final: bool = True

    def __init__(self, message: str | None = None, **details: Any) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidRequest(CoinsError):
    status, code, message = 400, "invalid_request", "The request is malformed."


class BodyTooLarge(InvalidRequest):
    status, message = 413, "The request body is too large."


class Unauthenticated(CoinsError):
    status, code, message = 401, "unauthenticated", "A valid Firebase ID token is required."


class Forbidden(CoinsError):
    status, code, message = 403, "forbidden", "You are not allowed to do this."


class KycRequired(CoinsError):
    status, code, message = 403, "kyc_required", "Identity verification (KYC) is required."


class NotFound(CoinsError):
    status, code, message = 404, "not_found", "Not found."


class JobNotFound(NotFound):
    code, message = "job_not_found", "No such job in the GUILD app."


class MethodNotAllowed(CoinsError):
    status, code, message = 405, "method_not_allowed", "This method is not allowed here."


class InsufficientFunds(CoinsError):
    status, code, message = 409, "insufficient_funds", "The balance is too low for this amount."


class InvalidState(CoinsError):
    status, code, message = 409, "invalid_state", "This cannot be done in the current state."


class Unstorable(InvalidState):
    """Firestore refused a write (an id stored before ids were checked at the door)."""

    message = "This names something that cannot be stored; an admin has to resolve it."


class WithdrawalPending(CoinsError):
    status, code, message = 409, "withdrawal_pending", "An open withdrawal already exists."


class RequestInProgress(CoinsError):
    status, code, message = 409, "request_in_progress", "A request with this Idempotency-Key is still running."


class ValidationFailed(CoinsError):
    status, code, message = 422, "validation_failed", "Some fields are invalid."


class IdempotencyKeyReused(CoinsError):
    status, code, message = 422, "idempotency_key_reused", "This Idempotency-Key was used with another request."


class RateLimited(CoinsError):
    """Over a velocity limit (coins.limits); `details.retry_after_seconds` says when the
    request would fit, and becomes the Retry-After header."""

    status, code, message = 429, "rate_limited", "Over a limit for this period; see details for which, and when to retry."


class GatewayError(CoinsError):
    status, code, message = 502, "gateway_error", "The payment gateway failed."


class Unavailable(CoinsError):
    """Transient: storage contention or an unreachable dependency. Safe to retry with the
    same Idempotency-Key, since nothing was committed."""

    status, code, message = 503, "unavailable", "Temporarily unavailable; retry with the same Idempotency-Key."
    final = False
