"""The OpenAI-compatible server (loraweek.serving): the official client, raw HTTP, hostile input, load.

One real server process (`python -m loraweek.serving --adapter <course adapter>`) on loopback
serves the contract tests; the guards that run before any model work (keys, rate limits,
body checks) are also tested in-process on an app whose model is still "loading".
"""
from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from loraweek.data.answer import parse_answer
from loraweek.serving.app import ServerConfig, create_app
from loraweek.serving.loadtest import run_load

MODEL = "helpdesk-router"
MESSAGES = [
    "Đơn hàng DH123 của tôi đã 5 ngày chưa giao, làm ơn kiểm tra giúp.",
    "My card payment failed twice at checkout, what should I do?",
    "Tôi muốn hủy đơn hàng vừa đặt sáng nay.",
    "Someone used my account to buy things I did not order!",
    "Can I change the delivery address of my order?",
    "Tài khoản của tôi bị khóa sau khi nhập sai mật khẩu.",
    "I would like a refund for the broken headphones.",
    "Lãi suất khoản vay tiêu dùng là bao nhiêu?",
]


# ---------------------------------------------------------------- fixtures
# `adapter` and `server` (the real server, shared with test_serving_structured.py) are in conftest.py
@pytest.fixture(scope="module")
def client(server):
    return server.openai_client(max_retries=0, timeout=120)


@pytest.fixture()
def loading_app():
    """An app whose model never finishes loading: everything before the model is real."""
    gate = threading.Event()
    app = create_app(lambda: gate.wait(60) and None, ServerConfig(api_keys=["key-one", "key-two"],
                     rate_limit_per_minute=60, rate_limit_burst=2, max_body_bytes=10_000))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    gate.set()


def metric(server, name: str, **labels) -> float:
    text = httpx.get(server.base_url + "/metrics").text
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def ask(client, message, **kw):
    kw = {"model": MODEL, "temperature": 0, "max_tokens": 64, **kw}
    return client.chat.completions.create(messages=[{"role": "user", "content": message}], **kw)


# ---------------------------------------------------------------- official client
def test_models_lists_adapter_and_base(client):
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {MODEL, "base"}
    assert models[MODEL].model_extra.get("parent") == "base"


def test_plain_completion_shape_and_usage(client):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": MESSAGES[1]}], max_tokens=64, temperature=0)
    assert raw.headers["x-request-id"].startswith("chatcmpl-")
    r = raw.parse()
    assert r.object == "chat.completion" and r.id == raw.headers["x-request-id"]
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert 0 < r.usage.completion_tokens <= 64
    # "stop" exactly when an end-of-turn token ended the answer before the limit
    assert choice.finish_reason == ("length" if r.usage.completion_tokens == 64 else "stop")


def test_streaming_matches_plain_and_ends_properly(client):
    plain = ask(client, MESSAGES[0]).choices[0].message.content
    chunks = list(ask(client, MESSAGES[0], stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1 and chunks[-2].choices[0].finish_reason == finishes[0], \
        "exactly one finish_reason, in the last choice chunk"
    assert finishes[0] == ("length" if chunks[-1].usage.completion_tokens == 64 else "stop")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == plain


def test_raw_sse_ends_with_done(server):
    body = {"model": MODEL, "stream": True, "max_tokens": 8, "messages": [{"role": "user", "content": MESSAGES[2]}]}
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body, headers=server.headers(),
                      timeout=120) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]" and events.count("data: [DONE]") == 1


def test_max_tokens_gives_length_and_stop_strings_cut(client):
    r = ask(client, MESSAGES[3], max_completion_tokens=3, max_tokens=None)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    full = ask(client, MESSAGES[3]).choices[0].message.content
    word = full.split()[len(full.split()) // 2]
    cut = ask(client, MESSAGES[3], stop=[word]).choices[0]
    assert cut.finish_reason == "stop" and cut.message.content == full[: full.index(word)]


def test_base_and_adapter_differ(client):
    tuned = ask(client, MESSAGES[4]).choices[0].message.content
    base = ask(client, MESSAGES[4], model="base").choices[0].message.content
    assert tuned != base, "the base name must switch the adapter off"


def test_json_object_keeps_answers_that_were_already_routing_json(client):
    """The grammar only removes tokens that would break the routing schema: where the model's
    free answer already was routing JSON, the constrained (greedy) answer is the same text."""
    for message in MESSAGES[:3]:
        plain = ask(client, message, max_tokens=128).choices[0].message.content
        constrained = ask(client, message, max_tokens=128,
                          response_format={"type": "json_object"}).choices[0].message.content
        assert parse_answer(constrained) is not None, constrained
        if parse_answer(plain) is not None:
            assert constrained == plain


def test_unknown_model_and_bad_fields_via_client(client):
    with pytest.raises(openai.NotFoundError) as err:
        ask(client, "hi", model="gpt-4o")
    assert err.value.code == "model_not_found" and "gpt-4o" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "hi", temperature=-1)
    assert err.value.param == "temperature"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0).models.list()


# ---------------------------------------------------------------- hostile requests, in-process
HOSTILE = [
    (b"{not json", 400, "invalid_json"),
    (b"\xff\xfe\x00garbage", 400, "invalid_encoding"),
    (b"", 400, None),
    (b"[1, 2]", 400, None),
    (json.dumps({"model": MODEL}).encode(), 400, None),
    (json.dumps({"model": MODEL, "messages": []}).encode(), 400, None),
    (json.dumps({"model": MODEL, "messages": "hello"}).encode(), 400, None),
    (json.dumps({"model": MODEL, "messages": [{"role": "user", "content": 5}]}).encode(), 400, None),
    (json.dumps({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}).encode(), 400, None),
    (json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "  "}]}).encode(), 400, None),
    (json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": "10"}).encode(), 400, None),
    (json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": "yes"}).encode(), 400, None),
    (json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "n": 3}).encode(), 400, None),
    (json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}}).encode(), 400, None),
    (b"x" * (10 * 1024 * 1024), 413, "context_length_exceeded"),
]


@pytest.mark.parametrize("body,status,code", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_bodies_get_openai_errors(loading_app, body, status, code):
    r = loading_app.post("/v1/chat/completions", content=body, headers={"Authorization": "Bearer key-one"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert "Traceback" not in r.text
    if code:
        assert err["code"] == code


def test_auth_is_required_constant_time_and_case_insensitive(loading_app):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "key-one"}, {"Authorization": "Bearer "}):
        r = loading_app.post("/v1/chat/completions", json=body, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    for headers in ({"Authorization": "bearer key-two"}, {"X-Api-Key": "key-one"}):
        r = loading_app.post("/v1/chat/completions", json=body, headers=headers)
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_not_ready"  # past auth


def test_rate_limit_429_with_retry_after(loading_app):
    h = {"Authorization": "Bearer key-one"}
    statuses = [loading_app.get("/v1/models", headers=h).status_code for _ in range(3)]
    assert statuses[:2] == [503, 503] and statuses[2] == 429
    r = loading_app.get("/v1/models", headers=h)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["type"] == "rate_limit_error"
    # another key has its own bucket
    assert loading_app.get("/v1/models", headers={"Authorization": "Bearer key-two"}).status_code == 503


def test_health_503_while_loading_and_unknown_routes(loading_app):
    r = loading_app.get("/health")
    assert r.status_code == 503 and r.json()["error"]["message"] == "Loading model"
    r = loading_app.get("/v2/nothing")
    assert r.status_code == 404 and "error" in r.json()
    assert loading_app.get("/static/../app.py").status_code == 404


# ---------------------------------------------------------------- load, cancellation, limits
def test_concurrent_clients_get_their_own_answers(server, client):
    """8 clients at once: no errors, and every answer is the one its message gets alone."""
    alone = run_load(server.base_url, server.api_key, MODEL, MESSAGES, clients=1, max_tokens=32)
    hostile = [b"{", b"\xff", json.dumps({"model": MODEL, "messages": []}).encode()] * 3

    def attack():
        with httpx.Client(base_url=server.base_url, headers=server.headers()) as h:
            return [h.post("/v1/chat/completions", content=b).status_code for b in hostile]

    with ThreadPoolExecutor(1) as pool:
        bad = pool.submit(attack)
        together = run_load(server.base_url, server.api_key, MODEL, MESSAGES, clients=8, max_tokens=32)
    assert set(bad.result()) == {400}, "malformed requests get 400 and never disturb the others"
    assert alone.errors == 0 and together.errors == 0, [r.error for r in together.results if r.error]
    for r in together.results:
        assert r.text == alone.results[r.index % len(MESSAGES)].text, f"answer {r.index} belongs to another request"
        assert r.finish_reason in ("stop", "length")


def test_queue_full_gives_503_with_retry_after(server):
    # 8 running + 16 waiting hold 24 requests. Each answer is long (128 tokens, about a second a
    # batch on the ci model) and every thread posts at the same moment, so the 48 arrive while the
    # first 24 still hold their places, however fast this machine drains a batch.
    body = {"model": MODEL, "max_tokens": 128, "min_tokens": 128, "messages": [{"role": "user", "content": MESSAGES[0]}]}
    start = threading.Barrier(48)

    def post(_):
        with httpx.Client(base_url=server.base_url, headers=server.headers(), timeout=120) as h:
            start.wait()
            r = h.post("/v1/chat/completions", json=body)
        return r.status_code, r.headers.get("retry-after"), r.json()

    with ThreadPoolExecutor(48) as pool:
        results = list(pool.map(post, range(48)))
    codes = [c for c, _, _ in results]
    assert set(codes) <= {200, 503} and 200 in codes
    assert 503 in codes, "48 simultaneous requests must overflow a queue of 16"
    assert all(ra and body["error"]["code"] == "queue_full" for c, ra, body in results if c == 503)


def test_client_disconnect_stops_generation(server):
    before = metric(server, "router_cancelled_total")
    body = {"model": MODEL, "stream": True, "max_tokens": 256, "min_tokens": 256,
            "messages": [{"role": "user", "content": MESSAGES[5]}]}
    t0 = time.perf_counter()
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body, headers=server.headers(),
                      timeout=120) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i >= 4:
                break          # leave after a few tokens
    deadline = time.time() + 30
    while metric(server, "router_cancelled_total") <= before and time.time() < deadline:
        time.sleep(0.2)
    assert metric(server, "router_cancelled_total") == before + 1
    while httpx.get(server.base_url + "/health").json()["running"] and time.time() < deadline:
        time.sleep(0.1)
    assert httpx.get(server.base_url + "/health").json()["running"] == 0


def test_input_too_long_is_413(client):
    with pytest.raises(openai.APIStatusError) as err:
        ask(client, "giao hàng " * 2000)
    assert err.value.status_code == 413 and err.value.param == "messages"


# ---------------------------------------------------------------- monitoring and cloud
def test_metrics_count_requests_tokens_and_latency(server, client):
    before = metric(server, "router_http_requests_total", route="/v1/chat/completions", status="200")
    tokens = metric(server, "router_generated_tokens_total")
    n = ask(client, MESSAGES[6]).usage.completion_tokens
    assert metric(server, "router_http_requests_total", route="/v1/chat/completions", status="200") == before + 1
    assert metric(server, "router_generated_tokens_total") == tokens + n
    assert metric(server, "router_request_duration_seconds_count") >= 1
    assert metric(server, "router_time_to_first_token_seconds_count") >= 1


def test_sagemaker_routes(server, client):
    assert httpx.get(server.base_url + "/ping").status_code == 200
    body = {"model": MODEL, "temperature": 0, "max_tokens": 64, "messages": [{"role": "user", "content": MESSAGES[7]}]}
    r = httpx.post(server.base_url + "/invocations", json=body, headers=server.headers(), timeout=120)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == ask(client, MESSAGES[7]).choices[0].message.content
    assert httpx.post(server.base_url + "/invocations", json=body).status_code == 401


def test_api_key_never_logged(server, client):
    ask(client, MESSAGES[0], max_tokens=4)
    assert server.api_key not in server.log()
    assert not re.search(r"(?i)authorization", server.log())


def test_vertex_routes_follow_aip_environment(monkeypatch):
    monkeypatch.setenv("AIP_HEALTH_ROUTE", "/vertex/health")
    monkeypatch.setenv("AIP_PREDICT_ROUTE", "/vertex/predict")
    gate = threading.Event()
    app = create_app(lambda: gate.wait(60) and None, ServerConfig(api_keys=["k"], public_cloud_routes=True))
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/vertex/health").status_code == 503          # model still loading
        r = c.post("/vertex/predict", json={"instances": "nope"})   # public: the platform authenticates
        assert r.status_code == 400 and r.json()["error"]["param"] == "instances"
        r = c.post("/vertex/predict", json={"instances": [{"message": "hi"}]})
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_not_ready"
        assert c.post("/v1/chat/completions", json={}).status_code == 401   # /v1 still needs the key
    gate.set()
