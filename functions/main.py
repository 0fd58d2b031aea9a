"""Cloud Functions entry points. Each one only declares its method, access and input,
then calls one function of the `coins` package; coins.api does the HTTP glue."""

import functions_framework

from coins import catalog, models, wallets
from coins.api import Access, Call, endpoint


@functions_framework.http
@endpoint("GET", access=Access.PUBLIC)
def coins_catalog(call: Call):
    return catalog.describe()


@functions_framework.http
@endpoint("GET", access=Access.USER)
def coins_wallet(call: Call):
    return wallets.get_wallet(call.db, call.uid)


@functions_framework.http
@endpoint("GET", access=Access.USER, query=models.TransactionsPage)
def coins_transactions(call: Call):
    page = call.query
    return wallets.list_transactions(call.db, call.uid, limit=page.limit, cursor=page.cursor, entry_type=page.type)


@functions_framework.http
@endpoint("POST", access=Access.USER, body=models.CheckBalance)
def coins_check_balance(call: Call):
    return wallets.check_balance(call.db, call.uid, call.body.amount_dirhams)


@functions_framework.http
@endpoint("POST", access=Access.ADMIN, body=models.AdjustBalance, idempotent=True)
def admin_adjust_balance(call: Call):
    body = call.body
    return wallets.adjust_balance(
        call.db, call.caller, user_id=body.user_id, coins=body.coins, reason=body.reason, idempotency=call.idempotency
    )
