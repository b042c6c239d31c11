"""The same app on managed platforms: SageMaker and Vertex AI custom containers.

SageMaker runs `docker run IMAGE serve` and talks to port 8080: `GET /ping` must answer
200 when the container is healthy, `POST /invocations` gets the request body as sent to
the endpoint (here: a chat-completions body, as vLLM's `/invocations` does).
Vertex AI passes `AIP_HTTP_PORT`, `AIP_HEALTH_ROUTE` and `AIP_PREDICT_ROUTE`; the
predict body is `{"instances": [...], "parameters": {...}}` and the answer
`{"predictions": [...]}`, one prediction per instance (here: each instance is a
chat-completions body without `model`, or `{"message": "customer text"}`).

Both platforms authenticate callers (IAM) before the request reaches the container and
do not forward an Authorization header, so `public_cloud_routes=True` (the Dockerfile's
`--public-cloud-routes`) lets these routes skip our API key.  Never expose such a
container directly to the internet.
"""
from __future__ import annotations

import json
import os

from fastapi import Request

from loraweek.serving.errors import bad_request
from loraweek.serving.protocol import parse_chat_request


def vertex_routes(env=os.environ) -> tuple[str | None, str | None]:
    return env.get("AIP_HEALTH_ROUTE"), env.get("AIP_PREDICT_ROUTE")


def add_cloud_routes(app, state) -> None:
    """SageMaker's and Vertex AI's routes on `app`, served by `state` (app.ServerState: not
    imported, app.py imports this module)."""
    config = state.config
    public = config.public_cloud_routes

    async def ping():
        state.ready()
        return {"status": "ok"}

    async def invocations(request: Request):
        state.authorize(request, public=public)
        return await state.complete(request, await state.parsed_request(request))

    app.add_api_route("/ping", ping, methods=["GET"])
    app.add_api_route("/invocations", invocations, methods=["POST"])
    health_route, predict_route = vertex_routes()
    routes = config.extra.setdefault("routes", set())
    if health_route and health_route not in ("/health", "/ping"):
        routes.add(health_route)
        app.add_api_route(health_route, ping, methods=["GET"])
    if predict_route:
        routes.add(predict_route)

        async def predict(request: Request):
            state.authorize(request, public=public)
            body = await state.json_body(request)
            instances = body.get("instances")
            if not isinstance(instances, list) or not instances:
                raise bad_request("Vertex AI body must have a non-empty 'instances' list.", param="instances")
            parameters = body.get("parameters", {})
            if not isinstance(parameters, dict):   # spread into each instance below: a list there was a 500
                raise bad_request("Vertex AI 'parameters' must be an object.", param="parameters")
            served, _ = state.ready()
            predictions = []
            for i, inst in enumerate(instances):
                if isinstance(inst, dict) and isinstance(inst.get("message"), str):
                    inst = {"messages": [{"role": "user", "content": inst["message"]}]}
                if not isinstance(inst, dict):
                    raise bad_request(f"instances[{i}] must be an object.", param=f"instances[{i}]")
                req = parse_chat_request({"model": served.default_name, **parameters, **inst,
                                          "stream": False, "stream_options": None})
                resp = await state.complete(request, req)
                if resp.status_code != 200:     # 499: the caller left; its empty body is no JSON
                    return resp
                predictions.append(json.loads(resp.body))
            return {"predictions": predictions}

        app.add_api_route(predict_route, predict, methods=["POST"])
