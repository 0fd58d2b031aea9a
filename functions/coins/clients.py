"""The one place that creates clients, lazily, once per process. Services never create
clients; entry points pass these in, and tests pass their own."""

from __future__ import annotations

import functools

from . import config, errors


@functools.cache
def firestore():
    from google.cloud import firestore as firestore_module

    return firestore_module.Client(project=config.settings().project_id)


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
    try:
        return firebase_admin.get_app(name)
    except ValueError:
        credential = EmulatorCredential() if settings.auth_emulator_host else credentials.ApplicationDefault()
        return firebase_admin.initialize_app(credential, {"projectId": settings.project_id}, name=name)


def fatora():
    """The gateway client for the current configuration (one per base URL and key)."""
    settings = config.settings()
    if not settings.fatora_api_key:
        raise errors.Unavailable("The payment gateway is not configured (FATORA_API_KEY).")
    return _fatora(settings.fatora_base_url, settings.fatora_api_key)


@functools.cache
def _fatora(base_url: str, api_key: str):
    from .fatora import FatoraClient

    return FatoraClient(base_url, api_key)


def scheduler():
    """The timer service: Cloud Tasks, or the local queue where LOCAL_TASKS_TARGET_URL is set."""
    settings = config.settings()
    if settings.local_tasks_target_url:
        return _local_tasks(settings.local_tasks_target_url, settings.local_service_secret or "")
    if not (settings.escrow_auto_release_url and settings.tasks_service_account):
        raise errors.Unavailable("Cloud Tasks is not configured (ESCROW_AUTO_RELEASE_URL, TASKS_SERVICE_ACCOUNT).")
    return _cloud_tasks(
        settings.project_id,
        settings.tasks_location,
        settings.tasks_queue,
        settings.escrow_auto_release_url,
        settings.tasks_service_account,
    )


@functools.cache
def _cloud_tasks(project: str, location: str, queue: str, target_url: str, service_account: str):
    from .tasks import CloudTasksScheduler

    return CloudTasksScheduler(
        project=project, location=location, queue=queue, target_url=target_url, service_account_email=service_account
    )


@functools.cache
def _local_tasks(target_url: str, secret: str):
    from .auth import LOCAL_SERVICE_SECRET_HEADER
    from .tasks import LocalTaskQueue

    return LocalTaskQueue(target_url, headers={LOCAL_SERVICE_SECRET_HEADER: secret})
