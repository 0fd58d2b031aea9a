"""Who is calling: Firebase ID tokens, verified by firebase-admin."""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import errors


# Tokens issued by a clock slightly ahead of ours are still good.
TOKEN_CLOCK_SKEW_SECONDS = 60


@dataclass(frozen=True)
class Caller:
    uid: str
    admin: bool = False


def authenticate(authorization: str | None, app) -> Caller:
    """The caller of an `Authorization: Bearer <ID token>` header, or Unauthenticated."""
    from firebase_admin import auth as firebase_auth

    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise errors.Unauthenticated()
    try:
        claims = firebase_auth.verify_id_token(token, app=app)
    except firebase_auth.ExpiredIdTokenError:
        raise errors.Unauthenticated("The ID token has expired.") from None
    except firebase_auth.CertificateFetchError:
        raise errors.Unavailable("Could not fetch the keys that sign ID tokens.") from None
    except (ValueError, firebase_auth.InvalidIdTokenError):
        # Malformed, wrong project, wrong issuer, bad signature: all the same to a caller.
        raise errors.Unauthenticated() from None
    # firebase-admin skips the time checks for the Auth emulator's unsigned tokens (it
    # checks audience and issuer only), so they are checked here, in every mode.
    now = time.time()
    expires, issued = claims.get("exp"), claims.get("iat")
    if not isinstance(expires, (int, float)) or expires <= now:
        raise errors.Unauthenticated("The ID token has expired.")
    if not isinstance(issued, (int, float)) or issued > now + TOKEN_CLOCK_SKEW_SECONDS:
        raise errors.Unauthenticated()
    uid = claims.get("uid") or claims.get("sub")
    if not isinstance(uid, str) or not uid:
        raise errors.Unauthenticated()
    return Caller(uid=uid, admin=claims.get("admin") is True)


def require_admin(caller: Caller) -> None:
    if not caller.admin:
        raise errors.Forbidden("This needs an admin.")
