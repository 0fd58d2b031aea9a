"""The one place that creates clients, lazily: once per process the coins database,
the app's database, the Firebase app that verifies ID tokens, the payment gateways and the
timer service; Expo's push client per delivery (it is a plain HTTP session). Entry
points (functions/main.py, through coins.api) take them from here and pass them to the
services; tests pass their own.

The local stack replaces Cloud Tasks with its in-process queues through
`install_scheduler`; production never calls it.
"""

from __future__ import annotations

import functools
import threading

from . import config, errors
from .tasks import TaskScheduler

_installed_schedulers: dict[str, TaskScheduler] = {}
_FIREBASE_APP_LOCK = threading.Lock()
# The private functions Cloud Tasks calls, and the setting naming each one's URL.
TASK_TARGETS = {"escrow_timer": "ESCROW_TIMER_URL", "reconcile_full_step": "RECONCILE_STEP_URL"}


@functools.cache
def store():
    """The coins database (`COINS_DATABASE`), behind the one door to Firestore."""
    from .store import Store

    settings = config.settings()
    return Store.connect(settings.project_id, settings.coins_database)


@functools.cache
def app_db():
    """The GUILD app's database (`APP_DATABASE`), behind its one adapter (coins.app)."""
    from .app import AppDb

    settings = config.settings()
    return AppDb.connect(settings.project_id, settings.app_database)


@functools.cache
def firebase_app():
    import firebase_admin
    from firebase_admin import credentials

    class EmulatorCredential(credentials.Base):
        """Anonymous credentials: with FIREBASE_AUTH_EMULATOR_HOST set, firebase-admin
        verifies the Auth emulator's unsigned tokens and needs no service account."""

        def get_credential(self):
            import google.auth.credentials

            return google.auth.credentials.AnonymousCredentials()

    settings = config.settings()
    name = "guild-coins"
    # Instances serve several requests at once: the first two must not both create it.
    with _FIREBASE_APP_LOCK:
        try:
            return firebase_admin.get_app(name)
        except ValueError:
            emulated = settings.auth_emulator_host and settings.emulated
            credential = EmulatorCredential() if emulated else credentials.ApplicationDefault()
            return firebase_admin.initialize_app(credential, {"projectId": settings.project_id}, name=name)


def offered_gateways() -> tuple[str, ...]:
    """The gateways this configuration offers (coins.gateways.Name values)."""
    settings = config.settings()
    offered = []
    if settings.fatora_api_key and settings.purchase_return_url:
        offered.append("fatora")
    if settings.sadad_merchant_id and settings.sadad_secret_key and settings.sadad_website and settings.site_url:
        offered.append("sadad")
    return tuple(offered)


def gateway(name: str):
    """The named gateway (coins.gateways) for the current configuration; 503 where it is
    not configured (a purchase made through it can then not be settled until it is)."""
    from . import gateways

    settings = config.settings()
    if name not in offered_gateways():
        raise errors.Unavailable(f"The payment gateway {name} is not configured.")
    if name == gateways.Name.FATORA:
        assert settings.fatora_api_key and settings.purchase_return_url
        return gateways.FatoraGateway(
            _fatora(settings.fatora_base_url, settings.fatora_api_key),
            return_url=settings.purchase_return_url,
            required_mode=settings.fatora_required_mode,
            webhook_token=settings.fatora_webhook_token,
        )
    assert settings.sadad_merchant_id and settings.sadad_secret_key and settings.sadad_website and settings.site_url
    return gateways.SadadGateway(
        _sadad(settings.sadad_api_url, settings.sadad_merchant_id, settings.sadad_secret_key, settings.sadad_website),
        gateways.SadadAccount(
            merchant_id=settings.sadad_merchant_id,
            secret_key=settings.sadad_secret_key,
            website=settings.sadad_website,
            checkout_url=settings.sadad_checkout_url,
            callback_url=settings.site_url + SADAD_CALLBACK_PATH,
            page_url=settings.site_url + CHECKOUT_PAGE_PATH,
            required_mode=settings.sadad_required_mode,
        ),
    )


# Where SADAD sends the payer's browser, and our page that posts the form (main.py
# serves both; a test checks the paths agree).
SADAD_CALLBACK_PATH = "/api/coins/purchase/sadad/callback"
CHECKOUT_PAGE_PATH = "/api/coins/purchase/{id}/checkout"


@functools.cache
def _fatora(base_url: str, api_key: str):
    from .fatora import FatoraClient

    return FatoraClient(base_url, api_key)


@functools.cache
def _sadad(base_url: str, merchant_id: str, secret_key: str, website: str):
    """One client per configuration, so that its login token is reused."""
    from .sadad import SadadClient

    return SadadClient(base_url, merchant_id, secret_key, website)


def push():
    """Expo's push service for the current configuration."""
    from .push import ExpoPush

    settings = config.settings()
    return ExpoPush(settings.expo_push_url, settings.expo_access_token)


def install_scheduler(scheduler: TaskScheduler, target: str = "escrow_timer") -> None:
    """The local stack's queue in place of Cloud Tasks for one target (development only)."""
    _installed_schedulers[target] = scheduler


def scheduler(target: str = "escrow_timer") -> TaskScheduler:
    """Tasks for a private function (the escrow timers, the full replay's steps): Cloud
    Tasks, unless the local stack installed its own."""
    if target in _installed_schedulers:
        return _installed_schedulers[target]
    settings = config.settings()
    url = {"escrow_timer": settings.escrow_timer_url, "reconcile_full_step": settings.reconcile_step_url}[target]
    if not (url and settings.tasks_service_account):
        raise errors.Unavailable(f"Cloud Tasks is not configured ({TASK_TARGETS[target]}, TASKS_SERVICE_ACCOUNT).")
    return _cloud_tasks(settings.project_id, settings.tasks_location, settings.tasks_queue, url, settings.tasks_service_account)


@functools.cache
def _cloud_tasks(project: str, location: str, queue: str, target_url: str, service_account: str):
    from .tasks import CloudTasksScheduler

    return CloudTasksScheduler(
        project=project, location=location, queue=queue, target_url=target_url, service_account_email=service_account
    )
