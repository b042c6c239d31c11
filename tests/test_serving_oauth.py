"""OAuth 2.0 client credentials and TLS on the course server (issue 21, item 4).

In-process (the app's model still "loading": the guards run before any model work): the token
endpoint of RFC 6749 §4.4 and its errors, and every kind of bad token refused with RFC 6750's
challenge.  One real server over https (a local CA made by tls.py, a signing key made by
`cryptography`): the official `openai` client gets and reuses a token and gets an answer, API keys
still work beside tokens, a token the real server did not issue for it is refused, and a client
that does not trust the CA cannot connect.
"""
from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time

import httpx
import jwt
import openai
import pytest
from fastapi.testclient import TestClient
from openai import DefaultHttpxClient, OpenAI

from loraweek.serving.app import ServerConfig, create_app
from loraweek.serving.oauth import CLIENTS_ENV, OAuthServer, TokenSource, generate_signing_key, parse_clients
from loraweek.serving.process import ServerProcess
from loraweek.serving.tls import make_local_ca, write_private_key

SECRET, READER_SECRET, API_KEY = (secrets.token_urlsafe(32) for _ in range(3))
CLIENTS = f"billing-bot:{SECRET}:chat models,reporting:{READER_SECRET}:models"
TTL = 120


# ---------------------------------------------------------------- in-process
@pytest.fixture(scope="module")
def issuer():
    return OAuthServer(parse_clients(CLIENTS), ttl_s=TTL)


@pytest.fixture(scope="module")
def app_client(issuer):
    gate = threading.Event()
    app = create_app(lambda: gate.wait(60) and None, ServerConfig(api_keys=[API_KEY], oauth=issuer))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    gate.set()


def token_request(c, auth=("billing-bot", SECRET), **form):
    return c.post("/oauth/token", data={"grant_type": "client_credentials", **form}, auth=auth)


def claims_of(issuer, **override) -> dict:
    now = int(time.time())
    return {"iss": issuer.issuer, "sub": "billing-bot", "client_id": "billing-bot", "aud": issuer.audience,
            "iat": now, "exp": now + 60, "jti": "x", "scope": "chat models", **override}


def passes_auth(r) -> bool:
    # the model never loads here: a request past the guards is a 503, one refused by them a 401/403
    return r.status_code == 503 and r.json()["error"]["code"] == "model_not_ready"


def test_token_endpoint_issues_a_short_lived_jwt_verifiable_with_the_jwks(app_client, issuer):
    r = token_request(app_client)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == TTL and body["scope"] == "chat models"
    assert r.headers["cache-control"] == "no-store"                     # RFC 6749 §5.1
    jwks = jwt.PyJWKSet.from_dict(app_client.get("/.well-known/jwks.json").json())
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt"
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    claims = jwt.decode(body["access_token"], key.key, algorithms=["RS256"], audience=issuer.audience)
    assert claims["sub"] == "billing-bot" and claims["exp"] - claims["iat"] == TTL
    assert abs(claims["iat"] - time.time()) < 60
    # the same client, authenticated in the form (client_secret_post), a narrower scope
    r = app_client.post("/oauth/token", data={"grant_type": "client_credentials", "scope": "models",
                                              "client_id": "billing-bot", "client_secret": SECRET})
    assert r.status_code == 200 and r.json()["scope"] == "models"
    assert passes_auth(app_client.get("/v1/models", headers={"Authorization": "Bearer " + r.json()["access_token"]}))


@pytest.mark.parametrize("case, status, error", [
    ("wrong secret", 401, "invalid_client"),
    ("unknown client", 401, "invalid_client"),
    ("no credentials", 401, "invalid_client"),
    ("password grant", 400, "unsupported_grant_type"),
    ("no grant_type", 400, "invalid_request"),
    ("JSON body", 400, "invalid_request"),
    ("Basic and form", 400, "invalid_request"),
    ("scope not granted", 400, "invalid_scope"),
    ("unknown scope", 400, "invalid_scope"),
])
def test_token_endpoint_errors_are_rfc6749(app_client, case, status, error):
    post = app_client.post
    r = {
        "wrong secret": lambda: token_request(app_client, auth=("billing-bot", "not-it")),
        "unknown client": lambda: token_request(app_client, auth=("nobody", SECRET)),
        "no credentials": lambda: post("/oauth/token", data={"grant_type": "client_credentials"}),
        "password grant": lambda: token_request(app_client, grant_type="password"),
        "no grant_type": lambda: post("/oauth/token", data={"scope": "chat"}, auth=("billing-bot", SECRET)),
        "JSON body": lambda: post("/oauth/token", json={"grant_type": "client_credentials"}, auth=("billing-bot", SECRET)),
        "Basic and form": lambda: token_request(app_client, client_id="billing-bot", client_secret=SECRET),
        "scope not granted": lambda: token_request(app_client, auth=("reporting", READER_SECRET), scope="chat"),
        "unknown scope": lambda: token_request(app_client, scope="admin"),
    }[case]()
    assert r.status_code == status and r.json()["error"] == error, (case, r.status_code, r.text)
    assert r.json()["error_description"]
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Basic ")


def _tampered(token: str) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "chat models admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


@pytest.mark.parametrize("case, needle", [
    ("expired", "expired"),
    ("other audience", "audience"),
    ("other issuer", "issuer"),
    ("signed by another key", "signature"),
    ("payload tampered", "signature"),
    ("alg none", "alg value is not allowed"),
    ("no scope claim", "scope"),
    ("id token, not an access token", "typ"),
])
def test_bad_tokens_get_401_invalid_token(app_client, issuer, case, needle):
    now = int(time.time())
    headers = {"typ": "at+jwt"}
    token = {
        "expired": lambda: issuer.sign(claims_of(issuer, iat=now - 600, exp=now - 300)),
        "other audience": lambda: issuer.sign(claims_of(issuer, aud="another-api")),
        "other issuer": lambda: issuer.sign(claims_of(issuer, iss="https://evil.example")),
        "signed by another key": lambda: jwt.encode(claims_of(issuer), generate_signing_key(), "RS256", headers),
        "payload tampered": lambda: _tampered(token_request(app_client).json()["access_token"]),
        "alg none": lambda: jwt.encode(claims_of(issuer), None, "none", headers),
        "no scope claim": lambda: issuer.sign({k: v for k, v in claims_of(issuer).items() if k != "scope"}),
        "id token, not an access token": lambda: jwt.encode(claims_of(issuer), issuer.key, "RS256", {"typ": "JWT"}),
    }[case]()
    r = app_client.get("/v1/models", headers={"Authorization": "Bearer " + token})
    assert r.status_code == 401, (case, r.status_code, r.text)
    assert r.json()["error"]["code"] == "invalid_token" and needle in r.json()["error"]["message"].lower(), r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


def test_wrong_scope_is_403_and_api_keys_still_work(app_client):
    reader = token_request(app_client, auth=("reporting", READER_SECRET)).json()["access_token"]
    auth = {"Authorization": "Bearer " + reader}
    r = app_client.post("/v1/chat/completions", headers=auth, json={"model": "m", "messages": []})
    # RFC 6750 §3.1: a valid token without the route's scope is insufficient_scope, 403
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"] and 'scope="chat"' in r.headers["www-authenticate"]
    assert passes_auth(app_client.get("/v1/models", headers=auth))
    assert passes_auth(app_client.get("/v1/models", headers={"Authorization": "Bearer " + API_KEY}))
    r = app_client.get("/v1/models", headers={"Authorization": "Bearer not-a-key"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert r.headers["www-authenticate"].startswith("Bearer realm=")   # RFC 7235: every 401 names a scheme


def test_clients_config_errors_name_the_variable():
    for spec in ("only-an-id", "bot:secret:chat admin", ":secret"):
        with pytest.raises(ValueError, match=CLIENTS_ENV):
            parse_clients(spec)
    with pytest.raises(ValueError, match=CLIENTS_ENV):
        OAuthServer({})


# ---------------------------------------------------------------- a real server over https
@pytest.fixture(scope="module")
def tls_server(adapter, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    files = make_local_ca(folder)
    key_file = write_private_key(generate_signing_key(), folder / "signing-key.pem")
    with ServerProcess(["--adapter", str(adapter), "--profile", "ci", "--rate-limit", "100000",
                        "--oauth-key-file", str(key_file), "--oauth-token-ttl", str(TTL)],
                       api_key=API_KEY, env={CLIENTS_ENV: CLIENTS}, tls=files) as srv:
        srv.signing_key_file = key_file
        yield srv


def test_official_client_over_tls_with_a_client_credentials_token(tls_server):
    assert tls_server.base_url.startswith("https://")
    source = TokenSource(tls_server.base_url + "/oauth/token", "billing-bot", SECRET, scope="chat models",
                         verify=tls_server.verify)
    # clients are closed: an idle TLS connection would hold the server's graceful shutdown
    with tls_server.openai_client(api_key=source, max_retries=0, timeout=120) as client:
        assert "helpdesk-router" in {m.id for m in client.models.list().data}
        reply = client.chat.completions.create(model="helpdesk-router", max_tokens=8, temperature=0,
                                               messages=[{"role": "user", "content": "Tôi muốn hủy đơn hàng."}])
    assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
    assert source.fetches == 1     # one token served both requests
    # the API key works beside the tokens, over the same https
    with tls_server.openai_client(max_retries=0) as client:
        assert "helpdesk-router" in {m.id for m in client.models.list().data}


def test_real_server_refuses_an_expired_token(tls_server):
    from loraweek.serving.oauth import load_private_key

    issuer = OAuthServer(parse_clients(CLIENTS), load_private_key(tls_server.signing_key_file))
    now = int(time.time())
    expired = issuer.sign(claims_of(issuer, iat=now - 2 * TTL, exp=now - TTL))
    with tls_server.openai_client(api_key=expired, max_retries=0) as client, \
            pytest.raises(openai.AuthenticationError) as err:
        client.models.list()
    assert err.value.code == "invalid_token" and 'error="invalid_token"' in err.value.response.headers["www-authenticate"]


def test_tls_without_the_ca_fails(tls_server):
    # the system's trust store does not know our CA: the official client cannot connect at all
    with OpenAI(base_url=tls_server.base_url + "/v1", api_key=API_KEY, max_retries=0,
                http_client=DefaultHttpxClient()) as client, pytest.raises(openai.APIConnectionError):
        client.models.list()
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_server.base_url + "/health")
    # and a plain-http client gets no answer from the https port
    with pytest.raises(httpx.TransportError):
        httpx.get(tls_server.base_url.replace("https://", "http://") + "/health", timeout=5)
    # the CA is what makes it work, and it checks the name: 'localhost' is in the certificate too
    ctx = ssl.create_default_context(cafile=str(tls_server.tls.ca_cert))
    port = tls_server.port
    assert httpx.get(f"https://localhost:{port}/health", verify=ctx).status_code == 200
