"""The server never answers 500 to a client's bytes (issue 20, item 7).

One real server process (`python -m loraweek.serving --adapter <course adapter>`, with the
Vertex AI routes switched on) gets: JSON nested 5,000 levels deep, lone UTF-16 surrogates
in every text field, JSON that only Python's `json` accepts (NaN, 1e400, a 5,000-digit
integer), a body cut short, and 1,000 seeded random cases (random bytes, random JSON
shapes, mutated valid requests) on its three body-parsing routes.  Every status must be
< 500, every refusal OpenAI's error body, no answer a server error hidden in a 200 stream,
and afterwards /health is 200 and the server log holds no traceback.  Answers are capped
at 4 tokens (`--max-tokens-cap`), so the cases that do generate stay cheap.
"""
from __future__ import annotations

import json
import random
import socket
from urllib.parse import quote

import httpx
import pytest

from loraweek.serving.process import ServerProcess
from loraweek.serving.protocol import MAX_JSON_DEPTH
from test_serving import MODEL

ROUTES = ("/v1/chat/completions", "/invocations", "/vertex/predict")
SEED, CASES = 20, 1000


@pytest.fixture(scope="module")
def server(adapter):
    env = {"AIP_HEALTH_ROUTE": "/vertex/health", "AIP_PREDICT_ROUTE": "/vertex/predict"}
    with ServerProcess(["--adapter", str(adapter), "--profile", "ci", "--rate-limit", "1000000",
                        "--max-tokens-cap", "4"], env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.base_url, headers=server.headers(), timeout=120) as c:
        yield c


def chat(content="Tôi muốn hủy đơn hàng.", **extra) -> dict:
    return {"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": content}], **extra}


def as_route(route: str, body: dict) -> dict:
    """The same request as the route expects it: Vertex wraps it in `instances`."""
    if route != "/vertex/predict" or not isinstance(body, dict):
        return body
    inst = {k: v for k, v in body.items() if k != "model"}
    return {"instances": [inst]}


def post(http, route: str, body) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()   # ascii: a surrogate travels as \udXXX
    return http.post(route, content=raw)


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text[:300]
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if code:
        assert err["code"] == code, err
    return err


def nested(depth: int, kind: str) -> bytes:
    return b"[" * depth + b"]" * depth if kind == "list" else b'{"a":' * depth + b"1" + b"}" * depth


# ---------------------------------------------------------------- the two known breaks
@pytest.mark.parametrize("route", ROUTES)
def test_deep_json_is_400_naming_the_depth(http, route):
    inside = b'{"model": "%s", "messages": [{"role": "user", "content": %s}]}'
    for body in (nested(5000, "list"), nested(5000, "dict"),
                 b'{"model": "%s", "messages": %s}' % (MODEL.encode(), nested(5000, "list")),
                 inside % (MODEL.encode(), nested(5000, "dict"))):
        err = assert_openai_error(post(http, route, body), 400, "invalid_json")
        assert f"deeper than {MAX_JSON_DEPTH} levels" in err["message"] and "5,00" in err["message"], err
    # the limit itself: a body exactly MAX_JSON_DEPTH deep is served, one level more is not
    for depth, status in ((MAX_JSON_DEPTH, 200), (MAX_JSON_DEPTH + 1, 400)):
        raw = json.dumps(as_route(route, chat(metadata="@"))).encode()
        levels = depth - (3 if route == "/vertex/predict" else 1)   # the body (and instances[0]) count too
        r = post(http, route, raw.replace(b'"@"', nested(levels, "list")))
        assert r.status_code == status, r.text[:300]
    # brackets inside strings (after an escaped quote, too) are text, not nesting
    assert post(http, route, as_route(route, chat('say \\" ' + "[{" * 100))).status_code == 200


SURROGATES = [
    (chat("tôi cần \ud800 giúp"), "messages[0].content"),
    (chat("hi", messages=[{"role": "system", "content": "\udfff"}, {"role": "user", "content": "hi"}]),
     "messages[0].content"),
    (chat("hi", messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                          {"role": "user", "content": [{"type": "text", "text": "x\udc00"}]}]),
     "messages[2].content[0].text"),
    (chat("hi", stop=["x", "\ud83d"]), "stop[1]"),
]


@pytest.mark.parametrize("route", ROUTES)
def test_lone_surrogate_is_400_naming_the_message(http, route):
    cases = SURROGATES + ([] if route == "/vertex/predict" else [({**chat(), "model": "\ud800"}, "model")])
    for body, param in cases:
        err = assert_openai_error(post(http, route, as_route(route, body)), 400, "invalid_encoding")
        if route == "/vertex/predict":
            param = "instances[0]." + param
        assert err["param"] == param and "not encodable as UTF-8" in err["message"], err
        assert "lone UTF-16 surrogate" in err["message"], err
    # a complete pair is one character (U+1F600), served as usual
    assert post(http, route, as_route(route, chat("thanks \ud83d\ude00"))).status_code == 200


ODD = [
    (b'{"model": "m", "messages": [], "temperature": NaN}', "invalid_json", "NaN"),
    (b'{"model": "m", "messages": [], "top_p": -Infinity}', "invalid_json", "Infinity"),
    (b'{"model": "m", "messages": [], "max_tokens": 1e400}', "invalid_json", "1e400"),
    (b'{"model": "m", "messages": [], "seed": ' + b"9" * 5000 + b"}", "invalid_json", "5,000 digits"),
    (b'{"instances": [{"message": "hi"}], "parameters": ["max_tokens", 2]}', None, "parameters"),
]


@pytest.mark.parametrize("body,code,says", ODD, ids=range(len(ODD)))
def test_json_only_python_accepts_is_400(http, body, code, says):
    err = assert_openai_error(post(http, "/vertex/predict" if b"instances" in body else ROUTES[0], body), 400, code)
    assert says in err["message"] + str(err["param"]), err


def test_vanishing_temperature_samples_greedily(http):
    """1e-320 > 0 passes validation; dividing the logits by it made softmax NaN and the batch fail."""
    greedy = post(http, ROUTES[0], chat(temperature=0)).json()["choices"][0]["message"]["content"]
    for t in (1e-320, 5e-324, 1e-39):
        r = post(http, ROUTES[0], chat(temperature=t, seed=1))
        assert r.status_code == 200, r.text[:300]
        assert r.json()["choices"][0]["message"]["content"] == greedy


def test_body_cut_short_is_no_server_error(server):
    """A client that promises 1,000 bytes, sends 10 and hangs up: counted as 499, never as a 500."""
    host, port = server.base_url.removeprefix("http://").split(":")
    for route in ROUTES:
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"POST {route} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.api_key}\r\n"
                      "Content-Length: 1000\r\n\r\n{\"model\": ".encode())
            s.shutdown(socket.SHUT_WR)
            s.recv(1000)
    text = httpx.get(server.base_url + "/metrics").text
    assert 'status="500"' not in text and "Traceback" not in server.log(), server.log()[-3000:]


# ---------------------------------------------------------------- the fuzz
FIELDS = ["model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop",
          "stream", "stream_options", "response_format", "n", "min_tokens", "user", "instances", "parameters",
          "logprobs", "top_logprobs", "tools", "tool_choice"]
TEXT = ["hi", "Đơn hàng DH123", "\ud800", "\udfff", "\ud83d\ude00", "😀", "\x00", "\u202e", "\ufeff", "\\", '"',
        "{", "[", "\uffff", "\U0010ffff", "<|im_end|>", "{{ x }}", "%s", "\r\n"]
BIG = "@@BIG@@"   # stands for a literal json.dumps cannot write (a 5,000-digit integer, NaN)
HEADER_BYTES = [*range(33, 127), *range(128, 256)]
BIG_LITERALS = [b"9" * 5000, b"-" + b"1" * 101, b"1e400", b"-1e999", b"NaN", b"Infinity", b"1" * 100, b"1e-400"]


def rand_text(rng: random.Random) -> str:
    return "".join(rng.choice(TEXT) if rng.random() < 0.5 else chr(rng.randrange(0x110000))
                   for _ in range(rng.randrange(0, 8)))


def rand_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(10 if depth < 4 else 7)
    if kind == 0:
        return rng.choice([None, True, False, 0, -1, 1, 2**63, -(2**70), 0.5, -0.0, 1e-320, 3e308])
    if kind == 1:
        return rng.randrange(-10, 10**rng.randrange(1, 60))
    if kind == 2:
        return BIG
    if kind in (3, 4, 5):
        return rand_text(rng)
    if kind == 6:
        return rng.choice(["user", "system", "assistant", "developer", "text", "json_object", "json_schema", MODEL,
                           "base"])
    if kind in (7, 8):
        return [rand_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = [rng.choice(FIELDS + ["role", "content", "type", "text", "include_usage", "message", "json_schema", "name",
                                 "schema", "properties", "pattern", "enum"])
            if rng.random() < 0.7 else rand_text(rng) for _ in range(rng.randrange(0, 5))]
    return {k: rand_value(rng, depth + 1) for k in keys}


def rand_message(rng: random.Random):
    if rng.random() < 0.2:
        return rand_value(rng, 2)
    msg = {"role": rng.choice(["user", "user", "system", "assistant", "developer", "tool", 1, None]),
           "content": rng.choice([rand_text(rng), "hi", [{"type": "text", "text": rand_text(rng)}],
                                  rand_value(rng, 3)])}
    if rng.random() < 0.2:
        del msg[rng.choice(["role", "content"])]
    return msg


def mutate_fields(rng: random.Random) -> dict:
    """A valid request with a few fields changed (json_object and json_schema included: their
    4-token answers are cut JSON with finish_reason "length", no longer a 502)."""
    body = chat(rand_text(rng) or "hi")
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(4)
        if op == 0:
            body[rng.choice(FIELDS)] = rand_value(rng, 1)
        elif op == 1:
            body.pop(rng.choice(FIELDS), None)
        elif op == 2:
            body["messages"] = [rand_message(rng) for _ in range(rng.randrange(0, 4))]
        elif isinstance(body.get("messages"), list):
            body["messages"].append(rand_message(rng))
    if rng.random() < 0.1:    # a schema shaped by chance, often one that xgrammar cannot compile
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "fuzz", "schema": rand_value(rng, 2)}}
    return body


def mutate_bytes(rng: random.Random, raw: bytes) -> bytes:
    raw = bytearray(raw)
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(len(raw) + 1)
        op = rng.randrange(5)
        if op == 0 and raw:
            raw[min(at, len(raw) - 1)] = rng.randrange(256)
        elif op == 1:
            raw[at:at] = rng.choice([b"\\ud800", b"\xed\xa0\x80", b"[", b"{", b'"', b"\\", b"\x00", b",", b"NaN",
                                     b'"model": 1, ', bytes(rng.randrange(256) for _ in range(3))])
        elif op == 2:
            del raw[at:at + rng.randrange(1, 8)]
        elif op == 3:
            raw = raw[:at]
        else:
            raw[at:at] = nested(rng.randrange(1, 3000), rng.choice(["list", "dict"]))
    return bytes(raw)


def encode(rng: random.Random, value) -> bytes:
    """JSON text of `value`: escaped ASCII (a surrogate becomes \\udXXX) or raw UTF-8 (a surrogate
    becomes the bytes UTF-8 forbids), with each BIG placeholder turned into an odd literal."""
    if rng.random() < 0.7:
        raw = json.dumps(value).encode()
    else:
        raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    while b'"%s"' % BIG.encode() in raw:
        raw = raw.replace(b'"%s"' % BIG.encode(), rng.choice(BIG_LITERALS), 1)
    return raw


def fuzz_case(rng: random.Random) -> tuple[str, str, bytes, dict]:
    """(method, path, body, extra headers) of one case."""
    route = rng.choice(ROUTES)
    roll = rng.random()
    if roll < 0.12:           # random bytes
        return "POST", route, bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))), {}
    if roll < 0.24:           # deep nesting, near the limit and far past it, in every place
        depth = rng.choice([MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, rng.randrange(2, 5000)])
        where = rng.choice([b"@", b'{"model": "m", "messages": @}', b'{"model": "m", "messages": [{"role": "user", '
                            b'"content": @}]}', json.dumps(chat(metadata="@")).encode().replace(b'"@"', b"@")])
        return "POST", route, where.replace(b"@", nested(depth, rng.choice(["list", "dict"])), 1), {}
    if roll < 0.50:           # random JSON shapes
        return "POST", route, encode(rng, rand_value(rng)), {}
    if roll < 0.92:           # mutated valid requests
        body = encode(rng, as_route(route, mutate_fields(rng)))
        return "POST", route, mutate_bytes(rng, body) if rng.random() < 0.4 else body, {}
    if roll < 0.96:           # odd keys: any byte a header value may hold (not controls, DEL, outer spaces)
        key = bytes(rng.choice(HEADER_BYTES) for _ in range(rng.randrange(1, 40)))
        return "POST", route, json.dumps(chat()).encode(), {"Authorization": b"Bearer " + key}
    path = rng.choice(["/static/", "/v1/", "/", "/vertex/"]) + quote(bytes(rng.randrange(256) for _ in range(6)))
    return rng.choice(["GET", "POST", "PUT", "DELETE"]), path, b"", {}


def test_fuzz_never_500_and_server_stays_healthy(http, server):
    rng = random.Random(SEED)
    statuses, failures = {}, []
    for i in range(CASES):
        method, path, body, headers = fuzz_case(rng)
        try:
            r = http.request(method, path, content=body, headers=headers)
        except httpx.TransportError as exc:    # the server dropped the connection: worse than a 500
            failures.append(f"case {i}: {type(exc).__name__}: {method} {path} {body[:160]!r}")
            continue
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        problem = None
        if r.status_code >= 500:
            problem = "status >= 500"
        elif r.status_code != 200:
            try:
                err = r.json()["error"]
                assert set(err) == {"message", "type", "param", "code"}
            except Exception:
                problem = "not OpenAI's error body"
        elif "server_error" in r.text:     # a stream reports a failed generation inside its 200
            problem = "server error inside a 200"
        if problem:
            failures.append(f"case {i}: {problem}: {method} {path} {body[:160]!r} -> {r.status_code} {r.text[:200]}")
    assert not failures, f"{len(failures)} of {CASES} cases failed:\n" + "\n".join(failures[:10])
    assert statuses.get(400, 0) > CASES // 3, statuses
    assert statuses.get(200, 0) >= 10, f"too few cases reached the model: {statuses}"
    health = httpx.get(server.base_url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["running"] == 0, health.text
    assert "Traceback" not in server.log(), server.log()[-3000:]
