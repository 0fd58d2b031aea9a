"""The GUILD app's side of the project: the only module of the functions that knows the
app's collections and field names (the app's own code, summed up in docs/app-migration.md),
in the app's database (`APP_DATABASE`, `(default)`); on the local stack, `make job`
(local/jobs.py) also writes a job as the app does. Every other module talks to it in our terms: a `Job` with its client and
hired freelancer, an `AppUser` with a language and push tokens, a `Notification`.

The app's data is not always clean (fields of the wrong type, half-written offers), so
every read is checked here and refused with a clear 409, never a crash. Firestore
transactions do not span databases: reads that gate a payment happen before the money
transaction, and writes happen in the trigger, idempotently (deterministic ids, merges
of values computed from our state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from . import errors
from .domain import is_valid_id
from .language import LANGUAGES

JOBS = "jobs"
USERS = "users"
NOTIFICATIONS = "notifications"
# users/{uid}.notificationTokens.{deviceId} = {token, platform, isActive, updatedAt}.
# The app writes it with setDoc(..., {merge: true}) and a dotted key, which Firestore
# stores as ONE top-level field named "notificationTokens.<deviceId>" (only updateDoc
# reads dots as a path); a nested map is read too, should the app ever write one.
TOKENS_FIELD = "notificationTokens"
# Where the app may keep the language the user chose, in this order ("ar-QA" means "ar").
LANGUAGE_FIELDS = ("language", "preferredLanguage", "locale")


@dataclass(frozen=True)
class Job:
    id: str
    client_id: str
    # The hired freelancer: `freelancerId`, else `acceptedOffer.freelancerId`.
    freelancer_id: str | None
    title: str | None


@dataclass(frozen=True)
class PushToken:
    token: str
    # Where it lives in the user document, to mark it inactive: the literal top-level
    # field name, or the nested map's key path.
    field_path: str


@dataclass(frozen=True)
class AppUser:
    uid: str
    # The language the user chose in the app ("en" or "ar"), None until the app writes
    # one: coins.language.preferred decides what they read.
    language: str | None
    push_tokens: tuple[PushToken, ...] = ()


@dataclass(frozen=True)
class Notification:
    """One entry of the app's notification list, in the app's schema."""

    user_id: str
    type: str  # the app's kinds: "payment", "dispute" or "system" here
    title: str
    description: str
    priority: str  # "low" | "medium" | "high" | "urgent"
    action_url: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def document(self, created_at: datetime) -> dict[str, Any]:
        return {
            "userId": self.user_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "isRead": False,
            "priority": self.priority,
            "actionUrl": self.action_url,
            "metadata": dict(self.metadata),
            "createdAt": created_at,
        }


def parse_job(job_id: str, data: Mapping[str, Any]) -> Job:
    """A job as the app wrote it; 409 invalid_state where a field we rely on is unusable."""
    client_id = data.get("clientId")
    if not isinstance(client_id, str) or not is_valid_id(client_id):
        raise errors.InvalidState("This job has no usable clientId.", job_id=job_id)
    hired = data.get("freelancerId")
    if hired in (None, ""):
        offer = data.get("acceptedOffer")
        hired = offer.get("freelancerId") if isinstance(offer, Mapping) else None
    if hired in (None, ""):
        hired = None
    elif not isinstance(hired, str) or not is_valid_id(hired):
        raise errors.InvalidState("This job's hired freelancer id is not usable.", job_id=job_id)
    title = data.get("title")
    return Job(id=job_id, client_id=client_id, freelancer_id=hired, title=title if isinstance(title, str) else None)


def parse_user(uid: str, data: Mapping[str, Any] | None) -> AppUser:
    """The language the app keeps for the user (None when it keeps none of ours) and the
    active Expo push tokens."""
    data = data or {}
    language = None
    for name in LANGUAGE_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value[:2].lower() in LANGUAGES:
            language = value[:2].lower()
            break
    entries: list[tuple[str, Any]] = []
    nested = data.get(TOKENS_FIELD)
    if isinstance(nested, Mapping):
        entries += [(f"{TOKENS_FIELD}.{_quoted(device)}", value) for device, value in nested.items()]
    prefix = TOKENS_FIELD + "."
    entries += [(_quoted(name), value) for name, value in data.items() if isinstance(name, str) and name.startswith(prefix)]
    tokens = []
    for path, value in sorted(entries, key=lambda item: item[0]):
        if not isinstance(value, Mapping) or value.get("isActive") is False:
            continue
        token = value.get("token")
        if isinstance(token, str) and token.startswith("ExponentPushToken["):
            tokens.append(PushToken(token=token, field_path=path))
    return AppUser(uid=uid, language=language, push_tokens=tuple(tokens))


def _quoted(name: str) -> str:
    """A field name as one segment of a Firestore field path (backquoted when needed)."""
    if name.replace("_", "a").isalnum() and not name[:1].isdigit():
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class AppDb:
    """The app's database. Made once per process by `clients.app_db()`."""

    def __init__(self, client) -> None:
        self.client = client

    @staticmethod
    def connect(project: str, database: str) -> "AppDb":
        from google.cloud import firestore

        return AppDb(firestore.Client(project=project, database=database))

    def job(self, job_id: str) -> Job:
        """The job; 404 job_not_found if it does not exist, 409 if it is unusable."""
        snapshot = self.client.collection(JOBS).document(job_id).get()
        if not snapshot.exists:
            raise errors.JobNotFound(job_id=job_id)
        return parse_job(job_id, snapshot.to_dict())

    def user(self, uid: str) -> AppUser:
        snapshot = self.client.collection(USERS).document(uid).get()
        return parse_user(uid, snapshot.to_dict() if snapshot.exists else None)

    def notify(self, notification_id: str, notification: Notification, created_at: datetime) -> bool:
        """Writes the notification unless one with this id exists; True if written."""
        from google.api_core import exceptions

        try:
            self.client.collection(NOTIFICATIONS).document(notification_id).create(notification.document(created_at))
            return True
        except exceptions.AlreadyExists:
            return False

    def record_escrow(self, job_id: str, escrow_id: str, summary: Mapping[str, Any]) -> bool:
        """Writes our escrow onto the app's job: every milestone's under `coinEscrows`
        (by escrow id, with its milestone), and the one that changed last as `escrowId`
        and `coinEscrow` (what the app reads today); False if the job is gone (nothing is
        created in its place). Escrow ids are Firestore auto-ids, safe in a field path."""
        from google.api_core import exceptions

        fields = {
            "escrowId": escrow_id,
            "coinEscrow": dict(summary),
            f"coinEscrows.{escrow_id}": {"escrowId": escrow_id, **summary},
        }
        try:
            self.client.collection(JOBS).document(job_id).update(fields)
            return True
        except exceptions.NotFound:
            return False

    def deactivate_token(self, uid: str, token: PushToken) -> None:
        """Marks a token Expo no longer delivers to as inactive, where the app keeps it."""
        from google.api_core import exceptions

        try:
            self.client.collection(USERS).document(uid).update({f"{token.field_path}.isActive": False})
        except exceptions.NotFound:
            pass
