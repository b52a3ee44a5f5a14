"""OIDC / JWT bearer tokens, verified against the configured issuer's public keys.

For hospitals whose users sign in through their identity provider. The keys come from
a JWKS file on disk (air-gapped) or the issuer's JWKS URL inside the hospital network;
tokens must be signed with an asymmetric algorithm, unexpired, for our audience and
from the configured issuer. The role and groups come from configurable claims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jwt

from app.security.api_keys import Principal, Role

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


@dataclass
class OIDCVerifier:
    issuer: str
    audience: str
    jwks_file: Path | None = None
    jwks_url: str | None = None
    role_claim: str = "medcite_role"
    groups_claim: str = "groups"
    leeway_s: int = 30

    def __post_init__(self) -> None:
        self._url_client = jwt.PyJWKClient(self.jwks_url) if self.jwks_url else None
        self._file_keys: jwt.PyJWKSet | None = None
        if self.jwks_file is not None:
            self._file_keys = jwt.PyJWKSet.from_dict(json.loads(self.jwks_file.read_text()))

    def _key(self, token: str) -> jwt.PyJWK:
        kid = jwt.get_unverified_header(token).get("kid")
        if self._file_keys is not None:
            keys = [k for k in self._file_keys.keys if kid is None or k.key_id == kid]
            if not keys:
                raise jwt.InvalidKeyError(f"no key with kid {kid!r} in the JWKS file")
            return keys[0]
        assert self._url_client is not None
        return self._url_client.get_signing_key_from_jwt(token)

    def authenticate(self, token: str) -> Principal | None:
        """The caller named by a valid token, or None for any invalid token."""
        if token.count(".") != 2:
            return None
        try:
            claims = jwt.decode(
                token, self._key(token).key, algorithms=ALGORITHMS, audience=self.audience,
                issuer=self.issuer, leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
            role = Role(str(claims.get(self.role_claim, "")))
        except (jwt.PyJWTError, ValueError):
            return None
        groups = claims.get(self.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        return Principal(
            key_id=f"oidc:{claims['sub']}", name=str(claims.get("preferred_username")
                                                    or claims["sub"]),
            role=role, groups=[str(g) for g in groups],
        )
