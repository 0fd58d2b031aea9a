"""Configuration from the environment, read once per process. Limits live here as named
constants with their units and the reason for their value."""

from __future__ import annotations

import os
from dataclasses import dataclass

# A JSON body of any endpoint fits in a few hundred bytes; 16 KiB leaves room for notes
# and reasons while refusing anything that could be an attack on parsing or storage.
BODY_BYTES_MAX = 16 * 1024
# Idempotency keys: printable ASCII, as API.md says; UUIDs are 36.
IDEMPOTENCY_KEY_LENGTH_MAX = 255
# API.md promises keys are kept at least 24 hours. TTL deletion happens some time after
# `expires_at`, never before, so 24 h is enough.
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
# Lists: API.md's limits.
PAGE_LIMIT_DEFAULT = 20
PAGE_LIMIT_MAX = 100
# Contention: single-attempt transactions retried with full-jitter exponential backoff,
# until either limit is reached. The emulator takes shared locks on reads and times a
# writer's wait out after 2 s, so writers that overlap on one document deadlock for 2 s
# and all but one abort; under CPU starvation such deadlocks have been seen to chain for
# tens of seconds. The budget is in seconds, below Cloud Functions' 60 s request timeout.
TRANSACTION_ATTEMPTS_MAX = 25
TRANSACTION_DEADLINE_SECONDS = 45.0
TRANSACTION_BACKOFF_BASE_SECONDS = 0.2
TRANSACTION_BACKOFF_CAP_SECONDS = 3.0
# Free text (reasons, notes) is kept short: it is shown to admins and stored forever.
REASON_LENGTH_MAX = 500
# Document ids chosen by callers (user ids, job ids): Firebase uids are at most 128.
ID_LENGTH_MAX = 128
# Coins in one admin adjustment: a sanity bound, far above any real correction.
ADJUST_COUNT_MAX = 10_000


@dataclass(frozen=True)
class Settings:
    project_id: str
    # Set in development and tests: ID tokens are then the Auth emulator's unsigned ones.
    auth_emulator_host: str | None


def settings() -> Settings:
    return Settings(
        project_id=os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT") or "demo-guild",
        auth_emulator_host=os.environ.get("FIREBASE_AUTH_EMULATOR_HOST") or None,
    )
# How long a request may hold its idempotency key before another request with the same
# key may take over: longer than any request runs (Cloud Functions' default timeout is 60 s).
IDEMPOTENCY_LEASE_SECONDS = 120
