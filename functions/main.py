"""Cloud Functions entry points. Each one only declares its method, access and input,
then hands the work to the `coins` package, usually in one call; coins.api does the HTTP glue."""

import typing

import functions_framework

from coins import api, clients, config, errors
from coins.lazy import lazy

# The modules the functions call, imported when a function first calls one: an instance
# serves one function, and loads only what that function runs (its cold start).
if typing.TYPE_CHECKING:
    from coins import (
        catalog,
        console,
        effects,
        escrow,
        export,
        gateways,
        kyc,
        notify,
        openapi,
        purchases,
        receipts,
        reconciliation,
        repair,
        wallets,
        withdrawals,
    )
else:
    catalog, console, effects, escrow, export = lazy("catalog"), lazy("console"), lazy("effects"), lazy("escrow"), lazy("export")
    gateways, kyc, notify, openapi, purchases = lazy("gateways"), lazy("kyc"), lazy("notify"), lazy("openapi"), lazy("purchases")
    reconciliation, repair, wallets, withdrawals = lazy("reconciliation"), lazy("repair"), lazy("wallets"), lazy("withdrawals")
    receipts = lazy("receipts")
from coins.api import Access, Call, endpoint
from coins.registry import Resources, daily_at, every, monthly_at

# The sweepers and the repair (Cloud Scheduler, every 15 minutes, config.REPAIR_INTERVAL_SECONDS
# for the repair) handle batches with gateway calls and transactions: up to Cloud
# Functions' 540 s, with room for their clients. Reconciliation streams the whole ledger.
SWEEPER = Resources("512Mi", 540)
# Rendering a PDF (fpdf2, HarfBuzz, the font): a process serving one receipt peaked at
# 118 MiB against 102 MiB for the wallet (bench/receipts.py). A statement replays the
# person's entries from their first, so it gets more time and room.
RENDERS, STATEMENT = Resources("256Mi", 60), Resources("512Mi", 120)

# What the framework answers before any function runs (a path its router cannot match)
# gets the JSON error envelope too.
api.answer_framework_errors_in_json()


@functions_framework.http
@endpoint("GET", access=Access.PUBLIC, path="/api/coins/catalog", response="Catalog")
def coins_catalog(call: Call):
    return catalog.describe(clients.offered_gateways(), config.settings().purchase_gateway_default)


@functions_framework.http
@endpoint("GET", access=Access.PUBLIC, path="/api/coins/openapi.json")
def coins_openapi(call: Call):
    return openapi.served()


@functions_framework.http
@endpoint("GET", access=Access.USER, path="/api/coins/wallet", response="Wallet")
def coins_wallet(call: Call):
    return wallets.get_wallet(call.db, call.uid, language=call.caller.language)


@functions_framework.http
@endpoint(
    "GET",
    access=Access.USER,
    path="/api/coins/transactions",
    query="TransactionsPage",
    response="Page[Transaction]",
)
def coins_transactions(call: Call):
    page = call.query
    return wallets.list_transactions(call.db, call.uid, limit=page.limit, cursor=page.cursor, entry_type=page.type)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/check-balance",
    body="CheckBalance",
    response="BalanceCheck",
)
def coins_check_balance(call: Call):
    return wallets.check_balance(call.db, call.uid, call.body.amount_dirhams)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.ADMIN,
    path="/api/admin/coins/adjust-balance",
    body="AdjustBalance",
    idempotent=True,
    response="Adjustment",
    raises=(errors.InsufficientFunds,),
)
def admin_adjust_balance(call: Call):
    body = call.body
    return wallets.adjust_balance(
        call.db, call.caller, user_id=body.user_id, coins=body.coins, reason=body.reason, idempotency=call.idempotency
    )


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/purchase",
    body="PurchaseCreate",
    idempotent=True,
    response="Purchase",
    status=201,
    raises=(errors.RateLimited, errors.GatewayError),
)
def coins_purchase_create(call: Call):
    body = call.body
    name = purchases.chosen(body.gateway, clients.offered_gateways())
    language = call.language or "en"
    return purchases.create(
        call.db,
        clients.gateway,
        name,
        call.caller,
        coins=body.coins_to_buy(),
        pack_id=body.pack_id,
        language=language,
        payer=purchases.payer_of(name, call.caller, email=body.email, mobile_no=body.mobile_no),
        idempotency=call.idempotency,
    )


@functions_framework.http
@endpoint("GET", access=Access.USER, path="/api/coins/purchase/{id}", response="Purchase")
def coins_purchase_get(call: Call):
    return purchases.get(call.db, call.caller, call.params["id"])


@functions_framework.http
@endpoint(
    "GET",
    access=Access.USER,
    path="/api/coins/purchases",
    query="PurchasesPage",
    response="Page[Purchase]",
)
def coins_purchases_list(call: Call):
    page = call.query
    return purchases.list_for(call.db, call.caller, user_id=page.user_id, limit=page.limit, cursor=page.cursor)


def _as_sent(call: Call) -> dict:
    """What a gateway's notification carries, as it was sent: the query, the body, its type."""
    return {"query": call.args, "body": call.raw_body, "content_type": call.headers.get("Content-Type", "")}


@functions_framework.http
@endpoint(
    "GET",
    access=Access.PUBLIC,
    path="/api/coins/purchase/return",
    raw_body=True,
    pages=True,
    raises=(errors.InvalidRequest,),
)
def coins_purchase_return(call: Call):
    """Fatora's success_url and failure_url: the payer's browser, sent on to the app."""
    return api.Redirect(purchases.receive_browser(call.db, clients.gateway, gateways.Name.FATORA, **_as_sent(call)))


@functions_framework.http
@endpoint(
    "POST",
    access=Access.PUBLIC,
    path=clients.SADAD_CALLBACK_PATH,
    raw_body=True,
    pages=True,
    raises=(errors.InvalidRequest, errors.Unauthenticated),
)
def coins_sadad_callback(call: Call):
    """SADAD's CALLBACK_URL: the payer's browser posts SADAD's signed form; sent on to the app."""
    return api.Redirect(purchases.receive_browser(call.db, clients.gateway, gateways.Name.SADAD, **_as_sent(call)))


@functions_framework.http
@endpoint("GET", access=Access.PUBLIC, path=clients.CHECKOUT_PAGE_PATH, pages=True, html=True, raises=(errors.InvalidState,))
def coins_purchase_checkout(call: Call):
    """The page that posts a SADAD purchase's signed form (iOS opens it in Safari)."""
    text, headers = purchases.checkout_page(call.db, call.params["id"])
    return api.Html(text, headers)


@functions_framework.http
@endpoint(
    ("GET", "POST"),
    access=Access.PUBLIC,
    path="/api/coins/webhook/fatora",
    raw_body=True,
    raises=(errors.Unauthenticated, errors.InvalidRequest),
)
def coins_fatora_webhook(call: Call):
    return purchases.receive_webhook(call.db, clients.gateway, gateways.Name.FATORA, **_as_sent(call))


@functions_framework.http
@endpoint(
    "POST",
    access=Access.PUBLIC,
    path="/api/coins/webhook/sadad",
    raw_body=True,
    raises=(errors.Unauthenticated, errors.InvalidRequest),
)
def coins_sadad_webhook(call: Call):
    """SADAD's webhook (set in its panel): JSON with a checksum."""
    return purchases.receive_webhook(call.db, clients.gateway, gateways.Name.SADAD, **_as_sent(call))


@functions_framework.http
@endpoint("POST", access=Access.SERVICE, schedule=every(15), resources=SWEEPER)
def purchases_reconcile(call: Call):
    return purchases.reconcile_pending(call.db, clients.gateway, clients.offered_gateways())


@functions_framework.http
@endpoint(
    "POST",
    access=Access.ADMIN,
    path="/api/admin/coins/purchase/{id}/refund",
    body="PurchaseRefund",
    idempotent=True,
    response="Purchase",
    raises=(errors.InvalidState, errors.InsufficientFunds, errors.GatewayError),
)
def admin_purchase_refund(call: Call):
    return purchases.refund(
        call.db, clients.gateway, call.caller, call.params["id"], reason=call.body.reason, idempotency=call.idempotency
    )


@functions_framework.http
@endpoint(
    "GET",
    access=Access.ADMIN,
    path="/api/admin/coins/purchases/review",
    query="Page",
    response="Page[Purchase]",
)
def admin_purchases_review(call: Call):
    return purchases.list_review(call.db, limit=call.query.limit, cursor=call.query.cursor)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.ADMIN,
    path="/api/admin/coins/purchase/{id}/resolve",
    body="PurchaseResolve",
    idempotent=True,
    response="Purchase",
    raises=(errors.InvalidState, errors.InsufficientFunds, errors.GatewayError),
)
def admin_purchase_resolve(call: Call):
    return purchases.resolve(
        call.db,
        clients.gateway,
        call.caller,
        call.params["id"],
        action=call.body.action,
        note=call.body.note,
        idempotency=call.idempotency,
    )


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/job-payment",
    body="JobPayment",
    idempotent=True,
    response="Escrow",
    status=201,
    raises=(errors.JobNotFound, errors.InvalidState, errors.InsufficientFunds, errors.RateLimited),
)
def coins_job_payment(call: Call):
    body = call.body
    return escrow.lock(
        call.db,
        call.app_db,
        call.caller,
        job_id=body.job_id,
        milestone=body.milestone,
        freelancer_id=body.freelancer_id,
        amount_dirhams=body.amount_dirhams,
        idempotency=call.idempotency,
    )


@functions_framework.http
@endpoint(
    "GET",
    access=Access.USER,
    path="/api/coins/escrows",
    query="EscrowsPage",
    response="Page[Escrow]",
)
def coins_escrows_list(call: Call):
    page = call.query
    return escrow.list_for(
        call.db, call.caller, role=page.role, status=page.status, job_id=page.job_id, limit=page.limit, cursor=page.cursor
    )


@functions_framework.http
@endpoint("GET", access=Access.USER, path="/api/coins/escrow/{id}", response="Escrow")
def coins_escrow_get(call: Call):
    return escrow.get(call.db, call.caller, call.params["id"])


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/escrow/{id}/submit",
    body="Submit",
    response="Escrow",
    raises=(errors.InvalidState,),
)
def coins_escrow_submit(call: Call):
    return escrow.submit(call.db, call.caller, call.params["id"], note=call.body.note)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/escrow/{id}/request-changes",
    body="RequestChanges",
    response="Escrow",
    raises=(errors.InvalidState,),
)
def coins_escrow_request_changes(call: Call):
    return escrow.request_changes(call.db, call.caller, call.params["id"], note=call.body.note)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/escrow/{id}/release",
    body="Release",
    idempotent=True,
    response="Escrow",
    raises=(errors.InvalidState,),
)
def coins_escrow_release(call: Call):
    return escrow.release(
        call.db, call.caller, call.params["id"], amount_dirhams=call.body.amount_dirhams, idempotency=call.idempotency
    )


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/escrow/{id}/request-refund",
    body="RequestRefund",
    response="Escrow",
    raises=(errors.InvalidState,),
)
def coins_escrow_request_refund(call: Call):
    return escrow.request_refund(call.db, call.caller, call.params["id"], reason=call.body.reason)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/escrow/{id}/refund",
    idempotent=True,
    response="Escrow",
    raises=(errors.InvalidState,),
)
def coins_escrow_refund(call: Call):
    return escrow.refund(call.db, call.caller, call.params["id"], idempotency=call.idempotency)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/escrow/{id}/dispute",
    body="Dispute",
    response="Escrow",
    raises=(errors.InvalidState,),
)
def coins_escrow_dispute(call: Call):
    body = call.body
    return escrow.dispute(call.db, call.caller, call.params["id"], reason=body.reason, evidence_urls=tuple(body.evidence_urls))


@functions_framework.http
@endpoint(
    "GET",
    access=Access.ADMIN,
    path="/api/admin/coins/disputes",
    query="Page",
    response="Page[Escrow]",
)
def admin_disputes_list(call: Call):
    return escrow.list_disputes(call.db, limit=call.query.limit, cursor=call.query.cursor)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.ADMIN,
    path="/api/admin/coins/escrow/{id}/resolve",
    body="Resolve",
    idempotent=True,
    response="Escrow",
    raises=(errors.InvalidState,),
)
def admin_escrow_resolve(call: Call):
    body = call.body
    return escrow.resolve(
        call.db,
        call.caller,
        call.params["id"],
        freelancer_dirhams=body.freelancer_dirhams,
        note=body.note,
        idempotency=call.idempotency,
    )


@functions_framework.http
@endpoint("POST", access=Access.SERVICE, body="WindowTimer")
def escrow_timer(call: Call):
    """The Cloud Tasks target of the escrow timers (the review and refund-response windows)."""
    return {"outcome": escrow.when_window_ends(call.db, call.body.escrow_id, call.body.version)}


@functions_framework.http
@endpoint("POST", access=Access.SERVICE, schedule=every(15), resources=SWEEPER)
def escrows_sweep(call: Call):
    return escrow.sweep(call.db)


@functions_framework.http
@endpoint("POST", access=Access.SERVICE, schedule=every(15), resources=SWEEPER)
def coins_repair(call: Call):
    """Cloud Scheduler: what no trigger did (an entry's effects, an outbox event's deliveries)."""
    return repair.run(call.db, call.app_db, clients.push, clients.scheduler)


@functions_framework.cloud_event
@api.on_document_created("ledger/{entryId}")
def ledger_on_create(cloud_event):
    """Eventarc: google.cloud.firestore.document.v1.created on ledger/{entryId}."""
    effects.handle_event(clients.store(), cloud_event.data)


@functions_framework.cloud_event
@api.on_document_created("outbox/{eventId}")
def outbox_on_create(cloud_event):
    """Eventarc: google.cloud.firestore.document.v1.created on outbox/{eventId}."""
    notify.handle_event(clients.store(), clients.app_db(), clients.push, clients.scheduler, cloud_event.data)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.ADMIN,
    path="/api/admin/coins/kyc/{uid}",
    body="KycSet",
    response="Wallet",
    raises=(errors.InvalidState,),
)
def admin_kyc_set(call: Call):
    return kyc.decide(call.db, call.caller, user_id=call.params["uid"], status=call.body.status, note=call.body.note)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/kyc",
    body="KycSubmit",
    response="Wallet",
    raises=(errors.InvalidState,),
)
def coins_kyc_submit(call: Call):
    body = call.body
    return kyc.submit(
        call.db, call.caller, full_name=body.full_name, qid_number=body.qid_number, document_urls=tuple(body.document_urls)
    )


@functions_framework.http
@endpoint(
    "GET",
    access=Access.ADMIN,
    path="/api/admin/coins/kyc/pending",
    query="Page",
    response="Page[KycSubmission]",
)
def admin_kyc_pending(call: Call):
    return kyc.list_pending(call.db, limit=call.query.limit, cursor=call.query.cursor)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.ADMIN,
    path="/api/admin/coins/users/{uid}/limits",
    body="LiftLimits",
    response="LimitsLifted",
)
def admin_limits_lift(call: Call):
    return wallets.lift_limits(
        call.db, call.caller, user_id=call.params["uid"], hours=call.body.lift_hours, reason=call.body.reason
    )


@functions_framework.http
@endpoint(
    "POST",
    access=Access.USER,
    path="/api/coins/withdrawal",
    body="WithdrawalCreate",
    idempotent=True,
    response="Withdrawal",
    status=201,
    raises=(errors.KycRequired, errors.WithdrawalPending, errors.InsufficientFunds, errors.RateLimited),
)
def coins_withdrawal_create(call: Call):
    body = call.body
    return withdrawals.create(
        call.db,
        call.caller,
        amount_dirhams=body.amount_dirhams,
        coins=body.coins,
        method=body.method,
        destination=body.destination.model_dump(),
        idempotency=call.idempotency,
    )


@functions_framework.http
@endpoint(
    "GET",
    access=Access.USER,
    path="/api/coins/withdrawals",
    query="Page",
    response="Page[Withdrawal]",
)
def coins_withdrawals_list(call: Call):
    return withdrawals.list_own(call.db, call.caller, limit=call.query.limit, cursor=call.query.cursor)


@functions_framework.http
@endpoint("GET", access=Access.USER, path="/api/coins/withdrawal/{id}", response="Withdrawal")
def coins_withdrawal_get(call: Call):
    return withdrawals.get(call.db, call.caller, call.params["id"])


@functions_framework.http
@endpoint(
    "GET",
    access=Access.ADMIN,
    path="/api/coins/withdrawals/pending",
    query="Page",
    response="Page[Withdrawal]",
)
def coins_withdrawals_pending(call: Call):
    return withdrawals.list_pending(call.db, limit=call.query.limit, cursor=call.query.cursor)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.ADMIN,
    path="/api/coins/withdrawal/{id}/approve",
    body="Approve",
    idempotent=True,
    response="Withdrawal",
    raises=(errors.InvalidState,),
)
def coins_withdrawal_approve(call: Call):
    return withdrawals.approve(call.db, call.caller, call.params["id"], notes=call.body.notes, idempotency=call.idempotency)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.ADMIN,
    path="/api/coins/withdrawal/{id}/paid",
    body="Paid",
    idempotent=True,
    response="Withdrawal",
    raises=(errors.InvalidState,),
)
def coins_withdrawal_paid(call: Call):
    return withdrawals.pay(
        call.db, call.caller, call.params["id"], payment_reference=call.body.payment_reference, idempotency=call.idempotency
    )


@functions_framework.http
@endpoint(
    "POST",
    access=Access.ADMIN,
    path="/api/coins/withdrawal/{id}/reject",
    body="Reject",
    idempotent=True,
    response="Withdrawal",
    raises=(errors.InvalidState,),
)
def coins_withdrawal_reject(call: Call):
    return withdrawals.reject(call.db, call.caller, call.params["id"], reason=call.body.reason, idempotency=call.idempotency)


@functions_framework.http
@endpoint("GET", access=Access.ADMIN, path="/api/admin/coins/queues", response="Queues")
def admin_queues(call: Call):
    return console.queues(call.db)


@functions_framework.http
@endpoint(
    "GET",
    access=Access.ADMIN,
    path="/api/admin/coins/users",
    query="UsersPage",
    response="Page[Wallet]",
)
def admin_users_list(call: Call):
    page = call.query
    return console.users(call.db, prefix=page.prefix, limit=page.limit, cursor=page.cursor)


@functions_framework.http
@endpoint("GET", access=Access.ADMIN, path="/api/admin/coins/users/{uid}", response="UserView")
def admin_user_get(call: Call):
    return console.user(call.db, call.params["uid"])


@functions_framework.http
@endpoint("GET", access=Access.ADMIN, path="/api/admin/coins/vault", response="Vault")
def admin_vault(call: Call):
    return console.vault(call.db)


@functions_framework.http
@endpoint(
    "GET",
    access=Access.ADMIN,
    path="/api/admin/coins/reconciliation",
    response="Reconciliation",
    resources=Resources("1Gi", 300),
)
def admin_reconciliation(call: Call):
    """Reconcile now: incremental, what is new since the checkpoint, kept and told as the daily run."""
    return reconciliation.run_now(call.db)


@functions_framework.http
@endpoint(
    "POST",
    access=Access.ADMIN,
    path="/api/admin/coins/reconciliation/full",
    response="ReconciliationRun",
    status=202,
    raises=(errors.InvalidState,),
)
def admin_reconciliation_full(call: Call):
    """Starts a full replay in chunks; its progress is at .../reconciliation/runs/{id}."""
    return api.Response(202, reconciliation.start_full(call.db, clients.scheduler("reconcile_full_step"), by=call.uid))


@functions_framework.http
@endpoint("GET", access=Access.ADMIN, path="/api/admin/coins/reconciliation/runs/{id}", response="ReconciliationRun")
def admin_reconciliation_run(call: Call):
    return reconciliation.get_run(call.db, call.params["id"])


@functions_framework.http
@endpoint(
    "GET",
    access=Access.ADMIN,
    path="/api/admin/coins/ledger/export",
    query="LedgerExport",
    produces="text/csv",
    resources=Resources("512Mi", 540),
)
def admin_ledger_export(call: Call):
    """The ledger of a period as CSV, one row per posting (coins.export)."""
    period = call.query
    return api.Stream("text/csv", export.ledger_csv(call.db, period.start, period.end), export.filename(period.start, period.end))


@functions_framework.http
@endpoint("POST", access=Access.SERVICE, body="FullStep", resources=Resources("1Gi", 540))
def reconcile_full_step(call: Call):
    """A chunk of a full replay (Cloud Tasks), which schedules the next."""
    return reconciliation.full_step(call.db, clients.scheduler("reconcile_full_step"), call.body.run_id)


@functions_framework.http
@endpoint("POST", access=Access.SERVICE, schedule=daily_at("02:30"), resources=Resources("1Gi", 540))
def reconcile_daily(call: Call):
    return reconciliation.run_daily(call.db)


@functions_framework.http
@endpoint("POST", access=Access.SERVICE, schedule=monthly_at(1, "03:00"), resources=Resources("512Mi", 60))
def reconcile_monthly(call: Call):
    """The monthly full replay: started here, run in chunks by reconcile_full_step."""
    return reconciliation.start_full(call.db, clients.scheduler("reconcile_full_step"), by="scheduler")


# Receipts and statements (coins.receipts): PDF in the reader's language, `?lang=en|ar`.


def _sent(file: "receipts.File") -> api.Stream:
    return api.Stream(file.content_type, iter((file.data,)), file.filename)


@functions_framework.http
@endpoint(
    "GET",
    access=Access.USER,
    path="/api/coins/purchase/{id}/receipt",
    query="Receipt",
    produces="application/pdf",
    raises=(errors.InvalidState,),
    resources=RENDERS,
)
def coins_purchase_receipt(call: Call):
    return _sent(receipts.purchase(call.db, call.caller, call.params["id"], receipts.language_for(call)))


@functions_framework.http
@endpoint(
    "GET",
    access=Access.USER,
    path="/api/coins/withdrawal/{id}/receipt",
    query="Receipt",
    produces="application/pdf",
    raises=(errors.InvalidState,),
    resources=RENDERS,
)
def coins_withdrawal_receipt(call: Call):
    return _sent(receipts.withdrawal(call.db, call.caller, call.params["id"], receipts.language_for(call)))


@functions_framework.http
@endpoint(
    "GET",
    access=Access.USER,
    path="/api/coins/escrow/{id}/receipt",
    query="Receipt",
    produces="application/pdf",
    raises=(errors.InvalidState,),
    resources=RENDERS,
)
def coins_escrow_receipt(call: Call):
    return _sent(receipts.escrow(call.db, call.caller, call.params["id"], receipts.language_for(call)))


@functions_framework.http
@endpoint(
    "GET",
    access=Access.USER,
    path="/api/coins/statements/{month}",
    query="Statement",
    produces=("application/pdf", "text/csv"),
    resources=STATEMENT,
)
def coins_statement(call: Call):
    """A month's statement (YYYY-MM, Qatar time); an admin names the user with `user_id`."""
    asked = call.query
    language = receipts.language_for(call) if asked.format == "pdf" else None  # a CSV has no words to read
    return _sent(receipts.statement(call.db, call.caller, call.params["month"], user_id=asked.user_id, language=language))
