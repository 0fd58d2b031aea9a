"""Configuration from the environment, read at each call of `settings()` (a handful of
lookups), so that the local stack and the tests can change it. Limits live here as
named constants with their units and the reason for their value."""

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
# Contention: a transaction that aborted is queued (ledger.execute: the key claimed, the
# contended documents leased in turn) and its attempts retried with full-jitter
# exponential backoff, until either limit is reached. The emulator takes shared locks on reads and times a
# writer's wait out after 2 s, so writers that overlap on one document deadlock for 2 s
# and all but one abort; under CPU starvation such deadlocks have been seen to chain for
# tens of seconds. The budget is in seconds, below Cloud Functions' 60 s request timeout.
TRANSACTION_ATTEMPTS_MAX = 25
TRANSACTION_DEADLINE_SECONDS = 45.0
TRANSACTION_BACKOFF_BASE_SECONDS = 0.2
TRANSACTION_BACKOFF_CAP_SECONDS = 3.0
# Free text (reasons, notes) is kept short: it is shown to admins and stored forever.
REASON_LENGTH_MAX = 500
# Coins in one admin adjustment: a sanity bound, far above any real correction.
ADJUST_COUNT_MAX = 10_000


# Purchases: a pending purchase is re-verified by the sweeper after 15 minutes (the payer
# never came back and no webhook came), and one that its gateway still reports unpaid
# after 24 hours expires. A refund whose gateway call has no recorded answer after 10
# minutes is put in front of an admin (the call may or may not have refunded).
PURCHASE_SWEEP_AFTER_SECONDS = 15 * 60
# A gateway's transaction reference in a notice is kept on the purchase and sent back to
# the gateway's API: printable, and at most this long (Fatora's ids and SADAD's numbers
# are far shorter).
GATEWAY_REFERENCE_LENGTH_MAX = 128
PURCHASE_EXPIRE_AFTER_SECONDS = 24 * 60 * 60
# A payment SADAD reports In Progress may turn Successful or Failed after midnight, once
# the bank confirms (W10, W12): it stays pending, re-verified by each sweep; still In
# Progress after two days, it goes to the review queue (it may be paid), never expired.
PURCHASE_IN_PROGRESS_EXPIRE_AFTER_SECONDS = 48 * 60 * 60
REFUND_ANSWER_WAIT_SECONDS = 10 * 60
# The payer's return waits this long for a settlement already in progress (a webhook that
# arrived first) before answering "pending".
RETURN_WAIT_SECONDS = 3.0
# The triggers apply an entry's effects and deliver an outbox event within seconds, and
# Eventarc retries a failing delivery for minutes. What is still pending after 10
# minutes (EFFECTS_REPAIR_AFTER_SECONDS, OUTBOX_REPAIR_AFTER_SECONDS) no trigger will
# do: the scheduled repair (coins.repair, every REPAIR_INTERVAL_SECONDS) does it, at
# most REPAIR_BATCH_MAX of each per run (each is a transaction; an event is also a few
# writes to the app's database and one call to Expo).
REPAIR_AFTER_SECONDS_DEFAULT = 10 * 60
REPAIR_INTERVAL_SECONDS = 15 * 60
REPAIR_BATCH_MAX = 200
# Reconciliation names what the repair could not apply, or never reached (the repair
# job is failing or not scheduled): anything pending longer than the repair's age plus
# two of its runs.
REPAIR_RUNS_BEFORE_A_PROBLEM = 2
# Incremental reconciliation (coins.reconciliation): each run verifies what is new since
# the checkpoint and moves it to this long ago, never nearer: a transaction commits
# within a minute of the time it stamps on its entry, so nothing can still arrive behind
# the watermark.
RECONCILE_LAG_SECONDS = 10 * 60
# The checkpoint's balances are spread over this many documents (1 MiB each holds some
# 10,000 accounts).
CHECKPOINT_SHARDS = 16
# Fraud signals (coins.signals): they flag and tell, they never block.
SIGNAL_ENTRIES_PER_DAY_MAX = 50
SIGNAL_WITHDRAWN_DIRHAMS_PER_WEEK_MAX = 10_000 * 100
# The accountant's export reads at most this long a period per request (a year and a
# day: a calendar year, whatever its length).
EXPORT_DAYS_MAX = 366
# A month's statement as PDF: at most this many entries (about 60 pages, rendered in
# some 3 s); a busier month is asked for as CSV.
STATEMENT_PDF_LINES_MAX = 2_000
# A full replay runs in chunks of this many entries (or documents), each a Cloud Task of
# its own well inside the function's limit (measured: about 10 s per 10,000).
FULL_REPLAY_CHUNK = 20_000
# Purchases one sweeper run re-verifies (per gateway): each is a gateway call of up to
# ~20 s worst case, and Cloud Scheduler runs it every 15 minutes.
PURCHASE_SWEEP_BATCH_MAX = 50


# Escrows: the review window starts when the freelancer submits (nothing moves merely
# because time passed since funding); when it ends, what is held is released. The
# refund-response window starts at a client's refund request; when it ends unanswered,
# what is held goes back to the client. 72 hours each (ESCROW_REVIEW_WINDOW_SECONDS,
# ESCROW_REFUND_RESPONSE_SECONDS). The sweeper acts on at most this many per run.
ESCROW_REVIEW_WINDOW_SECONDS_DEFAULT = 72 * 60 * 60
ESCROW_REFUND_RESPONSE_SECONDS_DEFAULT = 72 * 60 * 60
ESCROW_SWEEP_BATCH_MAX = 100
# Withdrawals at or above 10,000 QAR are flagged `large` for the admin (configurable,
# WITHDRAWAL_LARGE_DIRHAMS). There is no maximum.
WITHDRAWAL_LARGE_DIRHAMS_DEFAULT = 10_000 * 100
# A KYC submission links at most this many uploaded documents (an ID's two sides, a selfie...).
KYC_DOCUMENTS_MAX = 5
# Admins lift a user's velocity limits for at most 30 days at a time.
LIMIT_LIFT_HOURS_MAX = 30 * 24
# Free text of a dispute.
DISPUTE_REASON_LENGTH_MAX = 1000
# Evidence a party attaches to a dispute: links to uploads the app made.
DISPUTE_EVIDENCE_URLS_MAX = 10
URL_LENGTH_MAX = 2048
# A milestone's name: the app's label ("1", "Design", "Final delivery").
MILESTONE_LENGTH_MAX = 64


# The money lives in a named database of its own, never under the app's rules
# (docs/architecture.md); the app's own data is in the project's default database.
COINS_DATABASE_DEFAULT = "guild-coins"
APP_DATABASE_DEFAULT = "(default)"
# A project id only the emulator accepts (Firebase treats demo-* as emulator-only), so
# that nothing without GOOGLE_CLOUD_PROJECT can reach a real project by mistake.
PROJECT_ID_DEFAULT = "demo-guild"
# Fatora's documented API base, and the mode whose payments issue coins: live, unless
# the local stack says its sandbox's test mode.
FATORA_BASE_URL_DEFAULT = "https://api.fatora.io/v1"
FATORA_REQUIRED_MODE_DEFAULT = "live"
SADAD_REQUIRED_MODE_DEFAULT = "live"
# One checkout URL for test and live: the signing key picks the mode (W8, FAQ).
SADAD_CHECKOUT_URL_DEFAULT = "https://sadadqa.com/webpurchase"
SADAD_API_URL_DEFAULT = "https://api-s.sadad.qa/api/"
# The gateway of a purchase that names none (POST /api/coins/purchase without "gateway").
PURCHASE_GATEWAY_DEFAULT = "fatora"
# Cloud Tasks: me-central1 is Google Cloud's Doha region, where the users are; one queue for the
# escrow timers (make deploy creates it with the same names).
TASKS_LOCATION_DEFAULT = "me-central1"
TASKS_QUEUE_DEFAULT = "escrow-timers"
# Velocity limits per user, GUILD's design figures (COIN_SYSTEM_ADVANCED_ARCHITECTURE):
# at most 10 purchases and 50,000 QAR bought per rolling 24 h, 3 withdrawals and
# 20,000 QAR withdrawn per 7 days, 50 job payments per 24 h.
LIMIT_PURCHASES_PER_DAY_DEFAULT = 10
LIMIT_PURCHASE_DIRHAMS_PER_DAY_DEFAULT = 50_000 * 100
LIMIT_WITHDRAWALS_PER_WEEK_DEFAULT = 3
LIMIT_WITHDRAWAL_DIRHAMS_PER_WEEK_DEFAULT = 20_000 * 100
LIMIT_JOB_PAYMENTS_PER_DAY_DEFAULT = 50
# The app's URL scheme for deep links (guild://coins/escrow/{id}), and Expo's push service.
APP_LINK_BASE_DEFAULT = "guild://"
EXPO_PUSH_URL_DEFAULT = "https://exp.host"


@dataclass(frozen=True)
class Settings:
    project_id: str
    # The Firestore database that holds the money (every collection of `store`); the
    # rules in firestore.rules name it too.
    coins_database: str
    # The GUILD app's database (jobs, users, notifications), read and written by coins.app.
    app_database: str
    # Set only where Firestore is the emulator (development and tests). Everything that
    # only the local stack may do (unsigned tokens, the local service secret) needs it.
    firestore_emulator_host: str | None
    # Set in development and tests: ID tokens are then the Auth emulator's unsigned ones.
    auth_emulator_host: str | None
    fatora_base_url: str
    fatora_api_key: str | None
    # Optional: a token in the webhook URL configured in Fatora's dashboard
    # (`.../webhook/fatora?token=...`); where set, a webhook without it is refused.
    fatora_webhook_token: str | None
    # Coins are issued only for payments Fatora verifies in this mode ("live" unless the
    # local stack says its sandbox's).
    fatora_required_mode: str
    # Where Fatora sends the payer's browser after checkout, paid or not: our return
    # endpoint (`/api/coins/purchase/return`), which verifies, settles and sends the
    # browser on to the app.
    purchase_return_url: str | None
    # SADAD Web Checkout (coins.sadad): the merchant id (MID) and the secret key (from
    # Secret Manager) of SADAD's panel, the website domain the key is tied to (the form's
    # WEBSITE and the API's login domain), the checkout URL and the server API's base.
    sadad_merchant_id: str | None
    sadad_secret_key: str | None
    sadad_website: str | None
    sadad_checkout_url: str
    sadad_api_url: str
    # Coins are issued only for SADAD payments getTransaction reports in this mode
    # ("live" unless the local stack says its sandbox's "test").
    sadad_required_mode: str
    # The public site our endpoints are served at (the Hosting site): SADAD's
    # CALLBACK_URL and our checkout page are under it.
    site_url: str | None
    purchase_gateway_default: str
    # Scheduler and Cloud Tasks calls: Google-signed OIDC tokens for one of these
    # audiences (the private functions' URLs) from these service accounts, in production.
    service_audiences: tuple[str, ...]
    service_accounts: frozenset[str]
    # Development only (with the emulator): the local stack's shared secret in place of
    # an OIDC token.
    local_service_secret: str | None
    escrow_review_window_seconds: int
    escrow_refund_response_seconds: int
    withdrawal_large_dirhams: int
    # Cloud Tasks: the queue and the escrow timer target, called with an OIDC token of
    # this service account. (The local stack injects its own queue instead.)
    tasks_location: str
    tasks_queue: str
    escrow_timer_url: str | None
    # The full reconciliation's next chunk (`reconcile_full_step`), on the same queue.
    reconcile_step_url: str | None
    tasks_service_account: str | None
    # Who hears about what needs an operator (withdrawal requests, disputes, purchases in
    # review, reconciliation problems): Firebase uids, comma-separated in ADMIN_UIDS.
    admin_uids: tuple[str, ...]
    # Velocity limits per user (coins.limits), GUILD's design figures by default.
    limit_purchases_per_day: int
    limit_purchase_dirhams_per_day: int
    limit_withdrawals_per_week: int
    limit_withdrawal_dirhams_per_week: int
    limit_job_payments_per_day: int
    # Deep links in notifications: `{app_link_base}coins/escrow/{id}`.
    app_link_base: str
    # Expo's push service (a stand-in on the local stack) and, where Expo's enhanced
    # push security is on, its access token (a secret).
    expo_push_url: str
    expo_access_token: str | None
    # The scheduled repair's ages (coins.repair).
    effects_repair_after_seconds: int
    outbox_repair_after_seconds: int

    @property
    def emulated(self) -> bool:
        return self.firestore_emulator_host is not None


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _list(name: str) -> tuple[str, ...]:
    """A comma-separated variable."""
    return tuple(item.strip() for item in (_env(name) or "").split(",") if item.strip())


def settings() -> Settings:
    return Settings(
        project_id=_env("GOOGLE_CLOUD_PROJECT") or _env("GCLOUD_PROJECT") or PROJECT_ID_DEFAULT,
        coins_database=_env("COINS_DATABASE") or COINS_DATABASE_DEFAULT,
        app_database=_env("APP_DATABASE") or APP_DATABASE_DEFAULT,
        firestore_emulator_host=_env("FIRESTORE_EMULATOR_HOST"),
        auth_emulator_host=_env("FIREBASE_AUTH_EMULATOR_HOST"),
        fatora_base_url=_env("FATORA_BASE_URL") or FATORA_BASE_URL_DEFAULT,
        fatora_api_key=_env("FATORA_API_KEY"),
        fatora_webhook_token=_env("FATORA_WEBHOOK_TOKEN"),
        fatora_required_mode=(_env("FATORA_REQUIRED_MODE") or FATORA_REQUIRED_MODE_DEFAULT).lower(),
        purchase_return_url=_env("PURCHASE_RETURN_URL"),
        sadad_merchant_id=_env("SADAD_MERCHANT_ID"),
        sadad_secret_key=_env("SADAD_SECRET_KEY"),
        sadad_website=_env("SADAD_WEBSITE"),
        sadad_checkout_url=_env("SADAD_CHECKOUT_URL") or SADAD_CHECKOUT_URL_DEFAULT,
        sadad_api_url=_env("SADAD_API_URL") or SADAD_API_URL_DEFAULT,
        sadad_required_mode=(_env("SADAD_REQUIRED_MODE") or SADAD_REQUIRED_MODE_DEFAULT).lower(),
        site_url=(_env("SITE_URL") or "").rstrip("/") or None,
        purchase_gateway_default=(_env("PURCHASE_GATEWAY_DEFAULT") or PURCHASE_GATEWAY_DEFAULT).lower(),
        service_audiences=_list("SERVICE_AUDIENCE"),
        service_accounts=frozenset(_list("SERVICE_ACCOUNTS")),
        local_service_secret=_env("LOCAL_SERVICE_SECRET"),
        escrow_review_window_seconds=int(_env("ESCROW_REVIEW_WINDOW_SECONDS") or ESCROW_REVIEW_WINDOW_SECONDS_DEFAULT),
        escrow_refund_response_seconds=int(_env("ESCROW_REFUND_RESPONSE_SECONDS") or ESCROW_REFUND_RESPONSE_SECONDS_DEFAULT),
        withdrawal_large_dirhams=int(_env("WITHDRAWAL_LARGE_DIRHAMS") or WITHDRAWAL_LARGE_DIRHAMS_DEFAULT),
        tasks_location=_env("TASKS_LOCATION") or TASKS_LOCATION_DEFAULT,
        tasks_queue=_env("TASKS_QUEUE") or TASKS_QUEUE_DEFAULT,
        escrow_timer_url=_env("ESCROW_TIMER_URL"),
        reconcile_step_url=_env("RECONCILE_STEP_URL"),
        tasks_service_account=_env("TASKS_SERVICE_ACCOUNT"),
        admin_uids=_list("ADMIN_UIDS"),
        limit_purchases_per_day=int(_env("LIMIT_PURCHASES_PER_DAY") or LIMIT_PURCHASES_PER_DAY_DEFAULT),
        limit_purchase_dirhams_per_day=int(_env("LIMIT_PURCHASE_DIRHAMS_PER_DAY") or LIMIT_PURCHASE_DIRHAMS_PER_DAY_DEFAULT),
        limit_withdrawals_per_week=int(_env("LIMIT_WITHDRAWALS_PER_WEEK") or LIMIT_WITHDRAWALS_PER_WEEK_DEFAULT),
        limit_withdrawal_dirhams_per_week=int(
            _env("LIMIT_WITHDRAWAL_DIRHAMS_PER_WEEK") or LIMIT_WITHDRAWAL_DIRHAMS_PER_WEEK_DEFAULT
        ),
        limit_job_payments_per_day=int(_env("LIMIT_JOB_PAYMENTS_PER_DAY") or LIMIT_JOB_PAYMENTS_PER_DAY_DEFAULT),
        app_link_base=_env("APP_LINK_BASE") or APP_LINK_BASE_DEFAULT,
        expo_push_url=_env("EXPO_PUSH_URL") or EXPO_PUSH_URL_DEFAULT,
        expo_access_token=_env("EXPO_ACCESS_TOKEN"),
        effects_repair_after_seconds=int(_env("EFFECTS_REPAIR_AFTER_SECONDS") or REPAIR_AFTER_SECONDS_DEFAULT),
        outbox_repair_after_seconds=int(_env("OUTBOX_REPAIR_AFTER_SECONDS") or REPAIR_AFTER_SECONDS_DEFAULT),
    )


# How long a request may hold its idempotency key before another request with the same
# key may take over: longer than any request runs (Cloud Functions' default timeout is 60 s).
IDEMPOTENCY_LEASE_SECONDS = 120
# A request that queued after contention holds its key this long: it runs one queued
# transaction (measured: a storm of 64 answered in about 3 s), and if it died, the
# requests waiting on its key take the work over after that. One still at it then is
# no harm: its commit checks the claim is still its own.
QUEUED_CLAIM_LEASE_SECONDS = 15
# A request that finds its key held by a request doing the work (a retry storm) waits
# this long for the stored answer before answering 409 request_in_progress: the work is
# one queued transaction, and 20 s keeps the answer inside a mobile client's 30 s timeout.
IDEMPOTENCY_ANSWER_WAIT_SECONDS = 20.0
