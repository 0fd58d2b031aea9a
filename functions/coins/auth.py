"""Who is calling: app users and admins with Firebase ID tokens (firebase-admin), and
Google services (Cloud Scheduler, Cloud Tasks) with Google-signed OIDC tokens."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from . import errors, logs
from .domain import is_valid_id

# Tokens issued by a clock slightly ahead of ours are still good.
TOKEN_CLOCK_SKEW_SECONDS = 60
# The local stack's stand-in for an OIDC token on scheduler and task calls.
LOCAL_SERVICE_SECRET_HEADER = "X-Local-Service-Secret"


@dataclass(frozen=True)
class Caller:
    uid: str
    admin: bool = False
    # From the ID token, for the payment page: the gateways ask who pays.
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    # What a user's own request asked to read (Accept-Language, coins.language), set by
    # coins.api for user endpoints only: an admin's language is not the user's.
    language: str | None = None


def authenticate(authorization: str | None, app, *, auth_emulator: bool, emulated: bool) -> Caller:
    """The caller of an `Authorization: Bearer <ID token>` header, or Unauthenticated.
    A uid that cannot be a document id is Forbidden: it could not own anything here.

    With the Auth emulator configured (`auth_emulator`), firebase-admin accepts unsigned
    tokens; that is honoured only where Firestore is the emulator too (`emulated`), so a
    stray FIREBASE_AUTH_EMULATOR_HOST in production lets nobody in."""
    from firebase_admin import auth as firebase_auth

    if auth_emulator and not emulated:
        logs.error("FIREBASE_AUTH_EMULATOR_HOST is set outside the emulator; refusing every ID token")
        raise errors.Unauthenticated()
    token = _bearer(authorization)
    try:
        claims = firebase_auth.verify_id_token(token, app=app)
    except firebase_auth.ExpiredIdTokenError:
        raise errors.Unauthenticated("The ID token has expired.") from None
    except firebase_auth.CertificateFetchError:
        raise errors.Unavailable("Could not fetch the keys that sign ID tokens.") from None
    except (ValueError, firebase_auth.InvalidIdTokenError):
        # Malformed, wrong project, wrong issuer, bad signature: all the same to a caller.
        raise errors.Unauthenticated() from None
    _check_times(claims)
    uid = claims.get("uid") or claims.get("sub")
    if not isinstance(uid, str) or not uid:
        raise errors.Unauthenticated()
    if not is_valid_id(uid):
        raise errors.Forbidden("This account's id cannot hold coins.")
    return Caller(
        uid=uid,
        admin=claims.get("admin") is True,
        name=_text(claims.get("name")),
        email=_text(claims.get("email")),
        phone=_text(claims.get("phone_number")),
    )


def authenticate_service(
    headers, *, audiences: tuple[str, ...], accounts: frozenset[str], local_secret: str | None, request=None
) -> str:
    """The service account behind a scheduler or task call, or Unauthenticated/Forbidden.

    Production: a Google-signed OIDC token (`Authorization: Bearer`) for one of
    `audiences`, from one of `accounts`. Development: the local stack's shared secret header, honoured
    only when the caller passes `local_secret` (coins.api does so only on the emulator).
    """
    presented = headers.get(LOCAL_SERVICE_SECRET_HEADER)
    if local_secret and presented is not None:
        if hmac.compare_digest(presented.encode(), local_secret.encode()):
            return "local-service"
        raise errors.Unauthenticated("Wrong local service secret.")
    token = _bearer(headers.get("Authorization"))
    if not audiences or not accounts:
        raise errors.Unauthenticated("Service calls are not configured (SERVICE_AUDIENCE, SERVICE_ACCOUNTS).")
    import google.auth.exceptions
    import google.auth.transport.requests
    from google.oauth2 import id_token

    try:
        claims = id_token.verify_oauth2_token(
            token, request or google.auth.transport.requests.Request(), audience=list(audiences)
        )
    except google.auth.exceptions.TransportError:
        raise errors.Unavailable("Could not fetch Google's token keys.") from None
    except (ValueError, google.auth.exceptions.GoogleAuthError):
        raise errors.Unauthenticated() from None
    email = claims.get("email")
    if claims.get("email_verified") is not True or email not in accounts:
        raise errors.Forbidden("This service account may not call this function.")
    return email


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthenticated()
    return token


def _check_times(claims) -> None:
    # firebase-admin skips the time checks for the Auth emulator's unsigned tokens (it
    # checks audience and issuer only), so they are checked here, in every mode.
    now = time.time()
    expires, issued = claims.get("exp"), claims.get("iat")
    if not isinstance(expires, (int, float)) or expires <= now:
        raise errors.Unauthenticated("The ID token has expired.")
    if not isinstance(issued, (int, float)) or issued > now + TOKEN_CLOCK_SKEW_SECONDS:
        raise errors.Unauthenticated()


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None
