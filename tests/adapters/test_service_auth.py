"""Scheduler and Cloud Tasks calls: Google-signed OIDC tokens in production, checked with
Google's own verifier against keys served by a stand-in for Google's certificate
endpoint; and the local stack's shared secret."""

import datetime
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from coins import errors
from coins.auth import LOCAL_SERVICE_SECRET_HEADER, authenticate_service

AUDIENCE = "https://me-central1-guild.cloudfunctions.net/purchases_reconcile"
SCHEDULER = "scheduler@guild.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def google_keys():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-google-signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    signer = crypt.RSASigner.from_string(pem_key, key_id="kid-1")
    certs = {"kid-1": cert.public_bytes(serialization.Encoding.PEM).decode()}
    return signer, certs


class CertsEndpoint:
    """Answers the verifier's GET of Google's OAuth2 certificates, as Google does."""

    def __init__(self, certs):
        self.certs = certs
        self.urls = []

    def __call__(self, url, method="GET", **kwargs):
        self.urls.append(url)

        class Answer:
            status = 200
            data = json.dumps(self.certs).encode()
            headers = {}

        return Answer()


def oidc_token(signer, **overrides):
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": SCHEDULER,
        "email_verified": True,
        "sub": "1234567890",
        "iat": now,
        "exp": now + 3600,
        **overrides,
    }
    return jwt.encode(signer, claims).decode()


def check(headers, certs, accounts=frozenset({SCHEDULER}), local_secret=None):
    return authenticate_service(
        headers,
        audiences=(AUDIENCE, "https://other.example/fn"),
        accounts=accounts,
        local_secret=local_secret,
        request=CertsEndpoint(certs),
    )


def test_a_token_from_the_scheduler_account_for_this_audience_is_accepted(google_keys):
    signer, certs = google_keys
    endpoint = CertsEndpoint(certs)
    token = oidc_token(signer)
    account = authenticate_service(
        {"Authorization": f"Bearer {token}"},
        audiences=(AUDIENCE, "https://other.example/fn"),
        accounts=frozenset({SCHEDULER}),
        local_secret=None,
        request=endpoint,
    )
    assert account == SCHEDULER
    assert endpoint.urls == ["https://www.googleapis.com/oauth2/v1/certs"]


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"aud": "https://elsewhere.example/fn"}, errors.Unauthenticated),
        ({"exp": int(time.time()) - 600, "iat": int(time.time()) - 4000}, errors.Unauthenticated),
        ({"iss": "https://evil.example"}, errors.Unauthenticated),
        ({"email": "someone@guild.iam.gserviceaccount.com"}, errors.Forbidden),
        ({"email_verified": False}, errors.Forbidden),
    ],
    ids=["wrong-audience", "expired", "wrong-issuer", "other-account", "unverified-email"],
)
def test_other_tokens_are_refused(google_keys, overrides, error):
    signer, certs = google_keys
    with pytest.raises(error):
        check({"Authorization": f"Bearer {oidc_token(signer, **overrides)}"}, certs)


def test_a_token_signed_by_another_key_is_refused(google_keys):
    _, certs = google_keys
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    forged = oidc_token(crypt.RSASigner.from_string(pem, key_id="kid-1"))
    with pytest.raises(errors.Unauthenticated):
        check({"Authorization": f"Bearer {forged}"}, certs)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer x.y.z"}]
)
def test_missing_or_malformed_tokens_are_refused(google_keys, headers):
    with pytest.raises(errors.Unauthenticated):
        check(headers, google_keys[1])


def test_the_local_secret_works_only_where_it_is_configured(google_keys):
    certs = google_keys[1]
    assert check({LOCAL_SERVICE_SECRET_HEADER: "s3cret"}, certs, local_secret="s3cret") == "local-service"
    with pytest.raises(errors.Unauthenticated):
        check({LOCAL_SERVICE_SECRET_HEADER: "guess"}, certs, local_secret="s3cret")
    with pytest.raises(errors.Unauthenticated):
        check({LOCAL_SERVICE_SECRET_HEADER: "s3cret"}, certs, local_secret=None)


def test_without_configured_accounts_nothing_is_accepted(google_keys):
    signer, certs = google_keys
    with pytest.raises(errors.Unauthenticated):
        check({"Authorization": f"Bearer {oidc_token(signer)}"}, certs, accounts=frozenset())
