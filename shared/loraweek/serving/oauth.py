"""OAuth 2.0 client credentials (RFC 6749 §4.4): service accounts get short-lived signed tokens.

A *client-credentials client* is a program, not a person (a billing job, another team's backend):
it holds a client id and secret, trades them at the token endpoint for an access token that
expires in minutes, and sends that token as `Authorization: Bearer`.  Unlike an API key, a
leaked token stops working on its own, carries only the scopes it was issued for, and the secret
itself never travels with each request.

    POST /oauth/token   grant_type=client_credentials (form-encoded), client id and secret by
                        HTTP Basic (client_secret_basic) or in the form (client_secret_post)
    GET  /.well-known/jwks.json   the public key, so any service can verify tokens (RFC 7517)

Tokens are JWTs in the RFC 9068 profile (header typ `at+jwt`; iss, sub = client id, aud, exp,
iat, jti, client_id, scope) signed RS256 with the server's RSA key; PyJWT verifies them with an
algorithm allow-list (no `alg: none`, no HS256 signed with the public key).

Clients come from the environment, never from code:
    LORAWEEK_OAUTH_CLIENTS="billing-bot:SECRET:chat models,reporting:SECRET2:models"
(client id, secret, space-separated scopes; a client without scopes gets all of them).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote_plus

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from loraweek.serving.tls import write_private_key  # noqa: F401  (re-exported: the signing key's writer)

CLIENTS_ENV = "LORAWEEK_OAUTH_CLIENTS"
SCOPES = ("chat", "models")      # chat: POST /v1/chat/completions (and cloud routes); models: GET /v1/models
ALGORITHM = "RS256"
TOKEN_TYPE = "at+jwt"            # RFC 9068 §2.1: tells an access token from an ID token


class OAuthError(Exception):
    """A token-endpoint failure in RFC 6749 §5.2's shape: {"error", "error_description"}."""

    def __init__(self, status: int, error: str, description: str, headers: dict | None = None):
        super().__init__(description)
        self.status, self.error, self.description, self.headers = status, error, description, headers or {}

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description}


class TokenError(Exception):
    """A bearer token refused by a protected route (RFC 6750 §3.1: invalid_token or insufficient_scope)."""

    def __init__(self, error: str, description: str, scope: str | None = None):
        super().__init__(description)
        self.error, self.description, self.scope = error, description, scope


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    secret_digest: bytes
    scopes: frozenset


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def parse_clients(spec: str) -> dict[str, OAuthClient]:
    """`id:secret[:scope scope],...` -> clients; a clear error naming the variable otherwise."""
    clients = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ValueError(f"{CLIENTS_ENV}: expected 'client_id:secret[:scope scope]', got an entry with "
                             f"{len(parts)} ':'-separated fields")
        scopes = frozenset(parts[2].split()) if len(parts) == 3 and parts[2].strip() else frozenset(SCOPES)
        unknown = scopes - set(SCOPES)
        if unknown:
            raise ValueError(f"{CLIENTS_ENV}: client {parts[0]!r} has unknown scopes {sorted(unknown)}; "
                             f"known: {list(SCOPES)}")
        clients[parts[0]] = OAuthClient(parts[0], _digest(parts[1]), scopes)
    return clients


def clients_from_env(env=os.environ) -> dict[str, OAuthClient]:
    return parse_clients(env.get(CLIENTS_ENV, ""))


def generate_signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_private_key(path: str | Path):
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"--oauth-key-file {path}: expected an RSA private key (RS256), got {type(key).__name__}")
    return key


def public_jwk(key) -> dict:
    """The public key as a JWK with an RFC 7638 thumbprint as `kid`."""
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    return {**jwk, "kid": kid, "use": "sig", "alg": ALGORITHM}


class OAuthServer:
    """Issues and verifies access tokens for one audience (this API)."""

    def __init__(self, clients: dict[str, OAuthClient], key=None, issuer: str = "loraweek-router",
                 audience: str = "loraweek-router-api", ttl_s: int = 300, leeway_s: int = 0):
        if not clients:
            raise ValueError(f"no OAuth clients: set {CLIENTS_ENV}=client_id:secret[:scopes] in the server's environment")
        if ttl_s <= 0:
            raise ValueError(f"token lifetime must be > 0 seconds, got {ttl_s}")
        self.clients, self.issuer, self.audience, self.ttl_s, self.leeway_s = clients, issuer, audience, ttl_s, leeway_s
        self.key = key or generate_signing_key()   # none given: a fresh key, tokens die with the process
        self.jwk = public_jwk(self.key)
        self._public = self.key.public_key()
        self._dummy = _digest(secrets.token_urlsafe(32))

    # ---- token endpoint ---------------------------------------------------------
    def authenticate(self, client_id: str, secret: str) -> OAuthClient | None:
        client = self.clients.get(client_id)
        # an unknown id costs the same comparison as a known one
        ok = secrets.compare_digest(_digest(secret), client.secret_digest if client else self._dummy)
        return client if ok and client else None

    def issue(self, client: OAuthClient, scope: str | None = None, now: float | None = None) -> dict:
        """The token response of RFC 6749 §5.1 for an authenticated client."""
        granted = client.scopes if scope is None else frozenset(scope.split())
        if not granted or not granted <= client.scopes:
            raise OAuthError(400, "invalid_scope", f"scope must be a space-separated subset of "
                             f"{' '.join(sorted(client.scopes))!r} for this client, got {scope!r}")
        now = int(time.time() if now is None else now)
        claims = {"iss": self.issuer, "sub": client.client_id, "client_id": client.client_id, "aud": self.audience,
                  "iat": now, "exp": now + self.ttl_s, "jti": uuid.uuid4().hex, "scope": " ".join(sorted(granted))}
        return {"access_token": self.sign(claims), "token_type": "Bearer", "expires_in": self.ttl_s,
                "scope": claims["scope"]}

    def sign(self, claims: dict) -> str:
        return jwt.encode(claims, self.key, algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE, "kid": self.jwk["kid"]})

    def token_response(self, headers, body: bytes) -> dict:
        """POST /oauth/token: form-encoded client-credentials request -> token response, or OAuthError."""
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "the token request must be application/x-www-form-urlencoded "
                             f"(RFC 6749 §4.4.2), got {ctype or 'no Content-Type'!r}")
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise OAuthError(400, "invalid_request", "the form body is not UTF-8") from None
        repeated = sorted(k for k, v in form.items() if len(v) > 1)
        if repeated:
            raise OAuthError(400, "invalid_request", f"parameters sent more than once: {repeated}")
        form = {k: v[0] for k, v in form.items()}
        if "grant_type" not in form:
            raise OAuthError(400, "invalid_request", "missing grant_type (expected 'client_credentials')")
        if form["grant_type"] != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type",
                             f"grant_type must be 'client_credentials', got {form['grant_type']!r}")
        client_id, secret = self._credentials(headers.get("authorization", ""), form)
        client = self.authenticate(client_id, secret)
        if client is None:
            raise _invalid_client("unknown client or wrong secret")
        return self.issue(client, form.get("scope"))

    @staticmethod
    def _credentials(authorization: str, form: dict) -> tuple[str, str]:
        scheme, _, value = authorization.partition(" ")
        in_form = "client_secret" in form
        if scheme.lower() == "basic":
            if in_form:   # RFC 6749 §2.3: a client MUST NOT use more than one authentication method
                raise OAuthError(400, "invalid_request", "client credentials sent both by HTTP Basic and in the form")
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise _invalid_client("the Basic credentials are not base64 of 'client_id:client_secret'") from None
            client_id, sep, secret = decoded.partition(":")
            if not sep:
                raise _invalid_client("the Basic credentials are not base64 of 'client_id:client_secret'")
            return unquote_plus(client_id), unquote_plus(secret)   # §2.3.1: both are form-encoded first
        if in_form and form.get("client_id"):
            return form["client_id"], form["client_secret"]
        raise _invalid_client("no client authentication: send client_id/client_secret by HTTP Basic or in the form")

    # ---- protected routes ----------------------------------------------------------
    def verify(self, token: str, scope: str) -> dict:
        """The claims of a valid token that grants `scope`; TokenError otherwise."""
        try:
            claims = jwt.decode(token, self._public, algorithms=[ALGORITHM], audience=self.audience,
                                issuer=self.issuer, leeway=self.leeway_s,
                                options={"require": ["exp", "iat", "iss", "aud", "sub", "scope"]})
            if jwt.get_unverified_header(token).get("typ", "").lower() != TOKEN_TYPE:
                raise TokenError("invalid_token", f"the token's typ is not {TOKEN_TYPE!r} (RFC 9068)")
        except jwt.ExpiredSignatureError:
            raise TokenError("invalid_token", "the access token expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("invalid_token", f"the access token is not for this API (audience {self.audience!r})") from None
        except jwt.InvalidSignatureError:
            raise TokenError("invalid_token", "the access token's signature is invalid") from None
        except jwt.InvalidTokenError as exc:   # malformed, wrong issuer or algorithm, missing claims
            raise TokenError("invalid_token", str(exc) or type(exc).__name__) from None
        if scope not in str(claims["scope"]).split():
            raise TokenError("insufficient_scope", f"the access token lacks the scope {scope!r}", scope=scope)
        return claims


def _invalid_client(description: str) -> OAuthError:
    # RFC 6749 §5.2: 401 and a WWW-Authenticate challenge for the scheme the client may use
    return OAuthError(401, "invalid_client", description, headers={"WWW-Authenticate": 'Basic realm="loraweek-router"'})


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2


class TokenSource:
    """A client-credentials client: fetches a token, reuses it, fetches the next one before it expires.

    Pass it as the official client's `api_key` (a callable it calls before each request):
        OpenAI(base_url=..., api_key=TokenSource(token_url, client_id, secret, scope="chat"))
    """

    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str | None = None,
                 verify=True, refresh_margin_s: float = 30.0):
        self.token_url, self.scope, self.verify, self.margin = token_url, scope, verify, refresh_margin_s
        self._auth = (client_id, client_secret)
        self._token, self._expires_at, self._ttl = None, 0.0, 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def fetch(self) -> dict:
        data = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {})}
        r = httpx.post(self.token_url, data=data, auth=self._auth, verify=self.verify, timeout=30)
        if r.status_code != 200:
            raise RuntimeError(f"token endpoint {self.token_url} answered {r.status_code}: {r.text[:300]}")
        self.fetches += 1
        return r.json()

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() > self._expires_at - min(self.margin, 0.1 * self._ttl):
                t0, answer = time.monotonic(), self.fetch()
                self._token, self._ttl = answer["access_token"], float(answer["expires_in"])
                self._expires_at = t0 + self._ttl
            return self._token
