"""OIDC bearer tokens against a locally generated key pair (no network)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from app.security.api_keys import Role
from app.security.oidc import OIDCVerifier

ISSUER = "https://idp.hospital.example"


def _keypair() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return _keypair()


@pytest.fixture(scope="module")
def verifier(signing_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    path: Path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return OIDCVerifier(issuer=ISSUER, audience="medcite", jwks_file=path)


def token(key: rsa.RSAPrivateKey, **overrides: object) -> str:
    claims: dict[str, object] = {
        "iss": ISSUER, "aud": "medcite", "sub": "u-42", "preferred_username": "dr.who",
        "exp": int(time.time()) + 300, "medcite_role": "clinician", "groups": ["public"],
    }
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def test_valid_token_gives_role_and_groups(verifier: OIDCVerifier, signing_key) -> None:  # type: ignore[no-untyped-def]
    who = verifier.authenticate(token(signing_key, groups=["public", "cardiology"]))
    assert who is not None
    assert who.role is Role.clinician and who.groups == ["public", "cardiology"]
    assert who.key_id == "oidc:u-42" and who.name == "dr.who"


@pytest.mark.parametrize("bad", [
    {"exp": int(time.time()) - 3600},
    {"aud": "another-app"},
    {"iss": "https://evil.example"},
    {"medcite_role": "superuser"},
])
def test_invalid_claims_are_refused(verifier: OIDCVerifier, signing_key, bad) -> None:  # type: ignore[no-untyped-def]
    assert verifier.authenticate(token(signing_key, **bad)) is None


def test_foreign_signatures_and_symmetric_tricks_are_refused(verifier: OIDCVerifier) -> None:
    assert verifier.authenticate(token(_keypair())) is None
    forged = jwt.encode({"iss": ISSUER, "aud": "medcite", "sub": "x", "exp": 2**31,
                         "medcite_role": "admin"}, "s" * 40, algorithm="HS256",
                        headers={"kid": "k1"})
    assert verifier.authenticate(forged) is None
    assert verifier.authenticate("mc_not_a_jwt") is None


def test_api_accepts_tokens_and_checks_their_role(
    api, services, verifier: OIDCVerifier, signing_key  # type: ignore[no-untyped-def]
) -> None:
    saved = services.oidc
    services.oidc = verifier
    try:
        body = {"question": "What is the dose of zolpidem for insomnia?"}

        def ask(tok: str) -> int:
            return int(api.post("/ask", json=body,
                                headers={"Authorization": f"Bearer {tok}"}).status_code)

        assert ask(token(signing_key, medcite_role="auditor")) == 403
        assert ask(token(_keypair())) == 401
        assert ask(token(signing_key, exp=int(time.time()) - 3600)) == 401
        # A clinician token is let through (the answer itself abstains: no zolpidem source).
        assert ask(token(signing_key)) == 200
    finally:
        services.oidc = saved
