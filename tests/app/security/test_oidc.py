"""OIDC bearer tokens against a locally generated key pair (no network)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


# Expiry and the leeway, missing claims, unknown keys, keys from a JWKS URL ------------------


def test_expiry_is_allowed_within_the_leeway_and_refused_past_it(
    verifier: OIDCVerifier, signing_key  # type: ignore[no-untyped-def]
) -> None:
    assert verifier.leeway_s == 30
    now = int(time.time())
    assert verifier.authenticate(token(signing_key, exp=now - 10)) is not None  # clock skew
    assert verifier.authenticate(token(signing_key, exp=now - 60)) is None  # past the leeway
    assert verifier.authenticate(token(signing_key, nbf=now + 10)) is not None
    assert verifier.authenticate(token(signing_key, nbf=now + 120)) is None  # not valid yet


@pytest.mark.parametrize("claim", ["exp", "sub", "aud", "iss"])
def test_a_token_without_a_required_claim_is_refused(
    verifier: OIDCVerifier, signing_key, claim: str  # type: ignore[no-untyped-def]
) -> None:
    claims: dict[str, object] = {
        "iss": ISSUER, "aud": "medcite", "sub": "u-42", "exp": int(time.time()) + 300,
        "medcite_role": "clinician"}
    del claims[claim]
    tok = jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": "k1"})
    assert verifier.authenticate(tok) is None


def test_a_token_naming_an_unknown_key_is_refused(verifier: OIDCVerifier, signing_key) -> None:  # type: ignore[no-untyped-def]
    """Signed by the right key but naming a kid the JWKS does not hold: refused, not
    checked against some other key of the set."""
    claims = {"iss": ISSUER, "aud": "medcite", "sub": "u-42", "exp": int(time.time()) + 300,
              "medcite_role": "clinician"}
    assert verifier.authenticate(
        jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": "k-rotated"})) is None
    # The control: the same claims under the known kid pass.
    assert verifier.authenticate(
        jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": "k1"})) is not None


class _JWKSHandler(BaseHTTPRequestHandler):
    body = b""
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def jwks_url(signing_key: rsa.RSAPrivateKey) -> Iterator[tuple[str, list[str]]]:
    """The issuer's JWKS served over HTTP on 127.0.0.1, as an identity provider inside the
    hospital network serves it."""
    jwk = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    handler = type("H", (_JWKSHandler,), {"body": json.dumps({"keys": [jwk]}).encode(),
                                          "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/realms/h/certs", handler.paths
    server.shutdown()
    server.server_close()


def test_keys_from_the_jwks_url(jwks_url: tuple[str, list[str]], signing_key) -> None:  # type: ignore[no-untyped-def]
    url, paths = jwks_url
    verifier = OIDCVerifier(issuer=ISSUER, audience="medcite", jwks_url=url)
    who = verifier.authenticate(token(signing_key))
    assert who is not None and who.role is Role.clinician
    assert paths and paths[0] == "/realms/h/certs"
    assert verifier.authenticate(token(_keypair())) is None  # a foreign signature
    assert verifier.authenticate(token(signing_key, exp=int(time.time()) - 3600)) is None
    claims = {"iss": ISSUER, "aud": "medcite", "sub": "u", "exp": int(time.time()) + 300,
              "medcite_role": "clinician"}
    assert verifier.authenticate(
        jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": "k9"})) is None


def test_an_unreachable_jwks_url_refuses_tokens_without_a_server_error(
    api, services, signing_key  # type: ignore[no-untyped-def]
) -> None:
    """The identity provider down: the token is refused (401), the API does not fail."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/certs"
    verifier = OIDCVerifier(issuer=ISSUER, audience="medcite", jwks_url=closed)
    assert verifier.authenticate(token(signing_key)) is None
    saved = services.oidc
    services.oidc = verifier
    try:
        r = api.get("/me", headers={"Authorization": f"Bearer {token(signing_key)}"})
    finally:
        services.oidc = saved
    assert r.status_code == 401
