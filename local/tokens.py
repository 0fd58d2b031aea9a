"""Local Firebase ID tokens: unsigned (alg none), which firebase-admin accepts only when
FIREBASE_AUTH_EMULATOR_HOST is set. It still checks the audience, issuer and expiry.

    python -m local.tokens alice [--admin]
"""

from __future__ import annotations

import argparse
import base64
import json
import time

from local.emulator import PROJECT_ID

TOKEN_LIFETIME_SECONDS = 3600


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def mint(
    uid: str, *, admin: bool = False, project_id: str = PROJECT_ID, expires_in: int = TOKEN_LIFETIME_SECONDS, **claims
) -> str:
    now = int(time.time())
    payload = {
        "iss": f"https://securetoken.google.com/{project_id}",
        "aud": project_id,
        "sub": uid,
        "user_id": uid,
        "iat": now - 10,
        "auth_time": now - 10,
        "exp": now + expires_in,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
        **claims,
    }
    if admin:
        payload["admin"] = True
    return _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(payload) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uid")
    parser.add_argument("--admin", action="store_true", help="add the custom claim admin: true")
    parser.add_argument("--project", default=PROJECT_ID)
    args = parser.parse_args()
    print(mint(args.uid, admin=args.admin, project_id=args.project))


if __name__ == "__main__":
    main()
