"""The FastAPI app: OpenAI chat completions in front of the batching engine.

Routes
  POST /v1/chat/completions   OpenAI contract, plain and SSE streaming   (API key or token, scope chat)
  GET  /v1/models             served names: the adapter and its base     (API key or token, scope models)
  POST /oauth/token           OAuth 2.0 client credentials -> a short-lived JWT  (with oauth, see oauth.py)
  GET  /.well-known/jwks.json the public key that verifies those tokens   (public, with oauth)
  GET  /health                200 when the model is loaded, 503 before   (public)
  GET  /metrics               Prometheus text format                     (public)
  GET  /                      the chat page (static HTML + JS)           (public)
  GET  /ping, POST /invocations, $AIP_* routes: SageMaker / Vertex AI (see cloud.py)

Every failure is OpenAI's error body with the right status (errors.py); nothing a
client sends can produce a 500 or a stack trace.  `response_format` (json_object: the routing
schema; json_schema: the client's) constrains decoding itself (structured.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from jinja2 import TemplateError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from loraweek.data.chat import SYSTEM_PROMPT, scrub_message
from loraweek.data.answer import parse_answer
from loraweek.serving import errors
from loraweek.serving.backend import ServedModel, prompt_ids
from loraweek.serving.cloud import add_cloud_routes
from loraweek.serving.engine import BatchingEngine, Event, GenRequest, QueueFull
from loraweek.serving.errors import APIError
from loraweek.serving.metrics import RouterMetrics
from loraweek.serving.oauth import OAuthError, OAuthServer, TokenError, looks_like_jwt
from loraweek.serving.protocol import ChatRequest, decode_json_body, parse_chat_request, read_body
from loraweek.serving.security import KeyChecker, RateLimiter, presented_key
from loraweek.serving.structured import StructuredOutput

STATIC = Path(__file__).resolve().parent / "static"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}   # RFC 6749 §5.1: tokens are never cached


@dataclass
class ServerConfig:
    api_keys: list[str]
    max_body_bytes: int = 1_000_000
    max_input_tokens: int = 1024
    max_tokens_cap: int = 256
    default_max_tokens: int = 128
    rate_limit_per_minute: float = 600
    rate_limit_burst: int | None = None
    max_batch: int = 8
    max_queue: int = 64
    use_cache: bool = True
    public_cloud_routes: bool = False   # SageMaker/Vertex authenticate callers with IAM before us
    oauth: OAuthServer | None = None    # client-credentials tokens beside the API keys
    extra: dict = field(default_factory=dict)


def conversation(req: ChatRequest) -> list[dict]:
    """The messages the model sees: the router's system prompt unless the client sent one, and
    user text scrubbed of PII exactly as in training (train/serve skew is a classic bug)."""
    msgs = []
    for m in req.messages:
        role = "system" if m.role == "developer" else m.role
        text = m.text()
        msgs.append({"role": role, "content": scrub_message(text) if role == "user" else text})
    if msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": SYSTEM_PROMPT})
    return msgs


def _chunk(rid: str, created: int, model: str, delta: dict, finish: str | None = None) -> str:
    body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


@dataclass
class Completion:
    """One chat completion the engine has accepted: the request, its row in the engine, the
    queue the generation thread hands its Events to, and the answer so far."""
    req: ChatRequest
    gen: GenRequest
    queue: asyncio.Queue
    id: str
    created: int
    text: str = ""

    def usage(self, done: Event) -> dict:
        prompt = len(self.gen.prompt_ids)
        return {"prompt_tokens": prompt, "completion_tokens": done.completion_tokens,
                "total_tokens": prompt + done.completion_tokens}

    async def next_engine_event(self, poll: Request | None) -> Event | None:
        """The engine's next Event; with `poll`, None as soon as that client has gone."""
        if poll is None:
            return await self.queue.get()
        while True:
            try:
                return await asyncio.wait_for(self.queue.get(), timeout=0.5)
            except asyncio.TimeoutError:
                if await poll.is_disconnected():
                    return None


class ServerState:
    """What the routes share, and what they do with it; `served`/`engine` stay None while the
    model loads.  The methods under "the routes" are endpoints (create_app registers them): they
    carry no return annotation, which FastAPI would take for a response model."""

    def __init__(self, config: ServerConfig):
        self.config = config
        # API keys, OAuth clients or both; neither is refused (KeyChecker says how to set keys)
        self.keys = KeyChecker(config.api_keys) if config.api_keys or config.oauth is None else None
        self.limiter = RateLimiter(config.rate_limit_per_minute, config.rate_limit_burst)
        self.metrics = RouterMetrics()
        self.served: ServedModel | None = None
        self.engine: BatchingEngine | None = None
        self.structured: StructuredOutput | None = None
        self.load_error: str | None = None

    # ---- life -----------------------------------------------------------------------
    def attach(self, served: ServedModel) -> None:
        self.structured = StructuredOutput.for_served(served)   # the routing grammar, compiled before the first request
        self.engine = BatchingEngine(served, self.config.max_batch, self.config.max_queue, self.config.use_cache,
                                     on_batch=self.metrics.batch_size.observe).start()
        self.served = served

    @contextlib.asynccontextmanager
    async def lifespan(self, model: ServedModel | Callable[[], ServedModel]):
        """The app's lifespan: a loader runs in a thread (/health says 503 until it is done)."""
        if isinstance(model, ServedModel):
            self.attach(model)
        else:
            def run():
                try:
                    self.attach(model())
                except Exception as exc:  # reported by /health, not a crash loop
                    self.load_error = f"{type(exc).__name__}: {exc}"
            threading.Thread(target=run, daemon=True, name="loraweek-load").start()
        yield
        if self.engine:
            self.engine.stop()

    # ---- before any model work ------------------------------------------------------
    def authorize(self, request: Request, public: bool = False, scope: str = "chat") -> str:
        """API key (every scope) or an OAuth access token granting `scope`, then the caller's
        rate limit; returns the caller's id (a key's hash prefix, or client:<client_id>)."""
        if public:
            return "public"
        oauth = self.config.oauth
        presented = presented_key(request.headers)
        key_id = self.keys.check(presented) if self.keys else None
        if key_id is None and oauth is not None and presented and looks_like_jwt(presented):
            try:
                key_id = "client:" + oauth.verify(presented, scope)["sub"]
            except TokenError as exc:
                raise (errors.insufficient_scope(exc.scope) if exc.error == "insufficient_scope"
                       else errors.invalid_token(exc.description)) from None
        if key_id is None:
            raise errors.unauthorized()
        wait = self.limiter.acquire(key_id)
        if wait > 0:
            raise errors.rate_limited(wait)
        return key_id

    def ready(self) -> tuple[ServedModel, BatchingEngine]:
        if self.served is None or self.engine is None:
            raise APIError(503, "The model is still loading." if not self.load_error
                           else f"The model failed to load: {self.load_error}", type="server_error",
                           code="model_not_ready", headers={"Retry-After": "5"})
        return self.served, self.engine

    async def json_body(self, request: Request) -> dict:
        limit = self.config.max_body_bytes
        return decode_json_body(await read_body(request, limit), limit)

    async def parsed_request(self, request: Request) -> ChatRequest:
        return parse_chat_request(await self.json_body(request))

    # ---- the contract -------------------------------------------------------------
    async def complete(self, request: Request, req: ChatRequest) -> Response:
        """One chat completion, streamed (SSE) or whole: both read the same `events`."""
        c = await self.submit(req)
        headers = {"x-request-id": c.id}
        if req.stream:
            return StreamingResponse(self.sse(c), media_type="text/event-stream",
                                     headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await self.collect(c, request, headers)

    async def submit(self, req: ChatRequest) -> Completion:
        """Check the request against the model and the limits, then queue it in the engine."""
        config = self.config
        served, engine = self.ready()
        if req.model not in served.names:
            raise errors.model_not_found(req.model, list(served.names))
        try:
            ids = prompt_ids(served, conversation(req))
        except TemplateError as exc:
            # some families' templates refuse a conversation (Gemma: "roles must alternate
            # user/assistant", others: a system message after the first) with raise_exception
            raise errors.bad_request(f"The model's chat template cannot render this conversation: {exc}",
                                     param="messages") from None
        if len(ids) > config.max_input_tokens:
            raise errors.too_large(f"The conversation is {len(ids)} tokens; the limit is {config.max_input_tokens}.",
                                   param="messages")
        max_tokens = min(req.max_completion_tokens or req.max_tokens or config.default_max_tokens,
                         config.max_tokens_cap)
        grammar = await self.structured.grammar_for(req.response_format)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        gen = GenRequest(req.model, ids, max_tokens, emit=lambda ev: loop.call_soon_threadsafe(queue.put_nowait, ev),
                         temperature=req.temperature or 0.0, top_p=req.top_p or 1.0, seed=req.seed,
                         stop=req.stop_list(), min_tokens=min(req.min_tokens, max_tokens), grammar=grammar)
        try:
            engine.submit(gen)
        except QueueFull:
            raise errors.overloaded() from None
        self.metrics.prompt_tokens.inc(len(ids))
        return Completion(req, gen, queue, f"chatcmpl-{uuid.uuid4().hex}", int(time.time()))

    async def events(self, c: Completion, poll: Request | None = None) -> AsyncIterator[Event]:
        """The one event loop of a completion: Event("start"), the engine's "delta" Events, then
        its "done" or "error"; with `poll` (a whole response, which sends nothing until the end)
        Event("gone") instead when that client hangs up.  Counts the metrics on the way: in flight,
        time to first token, tokens, latency, the answer's labels.  Closed before the end, it stops
        the generation; a stream (no `poll`) is closed early only when its client went away."""
        m = self.metrics
        t0, first, finished = time.perf_counter(), True, False
        m.inflight.inc()
        try:
            yield Event("start")
            while not finished:
                ev = await c.next_engine_event(poll)
                if ev is None:
                    finished = True
                    c.gen.cancelled.set()
                    m.cancelled.inc()
                    ev = Event("gone")
                elif ev.kind == "delta":
                    if first:
                        m.ttft.observe(time.perf_counter() - t0)
                        first = False
                    c.text += ev.text
                elif ev.kind == "error":
                    finished = True
                else:
                    finished = True
                    m.generated_tokens.inc(ev.completion_tokens)
                    m.latency.observe(time.perf_counter() - t0)
                    self.count_answer(c.text)
                yield ev
        finally:
            m.inflight.dec()
            if not finished:       # nobody reads the rest: stop generating it
                c.gen.cancelled.set()
                if poll is None:   # the stream's client went away
                    m.cancelled.inc()

    async def collect(self, c: Completion, request: Request, headers: dict) -> Response:
        """The whole answer as one chat.completion."""
        async with contextlib.aclosing(self.events(c, poll=request)) as events:
            async for ev in events:
                if ev.kind == "error":
                    raise APIError(500, ev.text, type="server_error")
                if ev.kind == "gone":
                    return Response(status_code=499)
                if ev.kind == "done":
                    done = ev
        return JSONResponse({
            "id": c.id, "object": "chat.completion", "created": c.created, "model": c.req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                         "logprobs": None, "finish_reason": done.finish_reason}],
            "usage": c.usage(done), "system_fingerprint": None}, headers=headers)

    async def sse(self, c: Completion) -> AsyncIterator[str]:
        """The same events, each framed as server-sent events, then [DONE]."""
        model = c.req.model
        include_usage = bool(c.req.stream_options and c.req.stream_options.include_usage)
        async with contextlib.aclosing(self.events(c)) as events:
            async for ev in events:
                if ev.kind == "start":
                    yield _chunk(c.id, c.created, model, {"role": "assistant", "content": ""})
                elif ev.kind == "delta":
                    yield _chunk(c.id, c.created, model, {"content": ev.text})
                elif ev.kind == "error":
                    yield f"data: {json.dumps(APIError(500, ev.text, type='server_error').body())}\n\n"
                else:
                    yield _chunk(c.id, c.created, model, {}, ev.finish_reason)
                    if include_usage:
                        body = {"id": c.id, "object": "chat.completion.chunk", "created": c.created,
                                "model": model, "choices": [], "usage": c.usage(ev)}
                        yield f"data: {json.dumps(body)}\n\n"
        yield "data: [DONE]\n\n"

    def count_answer(self, text: str) -> None:
        """Monitoring only: with response_format the grammar already made the answer valid;
        an answer cut by max_tokens is returned as it is, with finish_reason "length" (as OpenAI does)."""
        parsed = parse_answer(text)
        if parsed is None:
            self.metrics.invalid_json.inc()
        else:
            self.metrics.intents.labels(parsed["intent"]).inc()
            self.metrics.languages.labels(parsed["language"]).inc()

    # ---- the routes -----------------------------------------------------------------
    async def chat_completions(self, request: Request):
        self.authorize(request)
        return await self.complete(request, await self.parsed_request(request))

    async def models(self, request: Request):
        self.authorize(request, scope="models")
        served, _ = self.ready()
        base = next((n for n, on in served.names.items() if not on), None)
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "loraweek",
                 "root": n, "parent": base if on and base else None} for n, on in served.names.items()]
        return {"object": "list", "data": data}

    async def health(self):
        if self.served is None:
            raise APIError(503, "Loading model" if not self.load_error else f"Model failed to load: {self.load_error}",
                           type="unavailable_error", code="model_not_ready", headers={"Retry-After": "5"})
        return {"status": "ok", "models": list(self.served.names), "queue": self.engine.waiting,
                "running": self.engine.running, **self.served.description}

    async def prometheus(self):
        self.metrics.queue.set(self.engine.waiting if self.engine else 0)
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def token(self, request: Request):
        answer = self.config.oauth.token_response(request.headers, await read_body(request, 8192))
        return JSONResponse(answer, headers=NO_STORE)

    async def jwks(self):
        return {"keys": [self.config.oauth.jwk]}


class MetricsMiddleware:
    """Counts every HTTP request by route template and status (pure ASGI: safe with streaming)."""

    ROUTES = {"/v1/chat/completions", "/v1/models", "/health", "/metrics", "/", "/ping", "/invocations",
              "/static/chat.js", "/static/chat.css", "/oauth/token", "/.well-known/jwks.json"}

    def __init__(self, app, state: ServerState):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope["path"]
            route = path if path in self.ROUTES or path in self.state.config.extra.get("routes", ()) else "other"
            self.state.metrics.requests.labels(route, str(status["code"])).inc()


# ---- what needs no state --------------------------------------------------------------
async def _api_error(request, exc: APIError):
    return exc.response()


async def _http_error(request, exc: StarletteHTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return APIError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=code).response()


async def _unexpected(request, exc):
    # never a stack trace to the client; the server log has it
    return APIError(500, "Internal error while serving the request.", type="server_error").response()


async def _oauth_error(request, exc: OAuthError):
    return JSONResponse(exc.body(), status_code=exc.status, headers={**exc.headers, **NO_STORE})


async def page():
    return FileResponse(STATIC / "index.html", headers={
        # no inline script, no third-party origin: a reply can never run as code here
        "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                                   "connect-src 'self'; frame-ancestors 'self'",
        "X-Content-Type-Options": "nosniff"})


async def static(name: str):
    files = {"chat.js": "text/javascript", "chat.css": "text/css"}
    if name not in files:      # a fixed allow-list: no path traversal possible
        raise APIError(404, f"No static file {name!r}.", code="not_found")
    return FileResponse(STATIC / name, media_type=files[name], headers={"X-Content-Type-Options": "nosniff"})


def create_app(model: ServedModel | Callable[[], ServedModel], config: ServerConfig) -> FastAPI:
    """The app.  `model` may be a loader: it then runs in a thread and /health says 503 until it is done."""
    state = ServerState(config)
    app = FastAPI(title="loraweek helpdesk router", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lambda app: state.lifespan(model))
    app.state.router = state
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_api_route("/v1/chat/completions", state.chat_completions, methods=["POST"])
    app.add_api_route("/v1/models", state.models, methods=["GET"])
    app.add_api_route("/health", state.health, methods=["GET"])
    app.add_api_route("/metrics", state.prometheus, methods=["GET"])
    app.add_api_route("/", page, methods=["GET"])
    app.add_api_route("/static/{name}", static, methods=["GET"])
    if config.oauth is not None:
        app.add_exception_handler(OAuthError, _oauth_error)
        app.add_api_route("/oauth/token", state.token, methods=["POST"])
        app.add_api_route("/.well-known/jwks.json", state.jwks, methods=["GET"])
    add_cloud_routes(app, state)
    app.add_middleware(MetricsMiddleware, state=state)
    return app
