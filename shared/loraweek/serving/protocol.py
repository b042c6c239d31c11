"""The chat-completions request: read the raw body safely, then validate it field by field.

The body is read by hand (not by FastAPI's automatic parsing) so that each failure
gets a precise OpenAI error instead of a 422 `{"detail": ...}` or a 500: too many
bytes (413), not UTF-8, not JSON, not an object, or a field of the wrong type (400,
with `param` naming the field).  Unknown fields are ignored, as vLLM does: clients send
`user`, `metadata` and other extras that change nothing here.
"""
from __future__ import annotations

import json
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from loraweek.serving.errors import APIError, bad_request, too_large


class TextPart(BaseModel):
    type: Literal["text"]
    text: StrictStr


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: Union[StrictStr, list[TextPart]]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object"]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: StrictStr
    messages: list[Message] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2, strict=True)
    top_p: float | None = Field(default=None, gt=0, le=1, strict=True)
    seed: StrictInt | None = Field(default=None, ge=0, lt=2**63)
    stop: Union[StrictStr, list[StrictStr], None] = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    n: StrictInt = Field(default=1, ge=1, le=1)
    min_tokens: StrictInt = Field(default=0, ge=0)   # vLLM's extension: no end-of-turn before this

    def stop_list(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]


def decode_json_body(raw: bytes, max_bytes: int) -> dict:
    """bytes -> a JSON object, or an APIError that says what is wrong."""
    if len(raw) > max_bytes:
        raise too_large(f"Request body is {len(raw)} bytes; the limit is {max_bytes} bytes.")
    if not raw.strip():
        raise bad_request("Request body is empty; expected a JSON object with 'model' and 'messages'.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"Request body is not valid UTF-8 (byte {exc.start}); send JSON encoded as UTF-8.",
                          code="invalid_encoding") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_request(f"Request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
                          code="invalid_json") from None
    if not isinstance(obj, dict):
        raise bad_request(f"Request body must be a JSON object, got a JSON {type(obj).__name__}.")
    return obj


def _param(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("str", "list[TextPart]", "function-after", "union") and not str(part).startswith(("list[", "float", "int")):
            out += ("." if out else "") + str(part)
    return out


def parse_chat_request(obj: dict) -> ChatRequest:
    """Validate a decoded body; the first problem becomes a 400 naming its field."""
    if obj.get("stream_options") is not None and not obj.get("stream"):
        raise bad_request("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
    if obj.get("n", 1) != 1 and isinstance(obj.get("n"), int):
        raise bad_request("Only n=1 is supported.", param="n")
    try:
        req = ChatRequest.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = _param(err["loc"])
        got = err.get("input")
        got = repr(got)[:80] if not isinstance(got, (dict, list)) else type(got).__name__
        if err["type"] == "missing":
            message = f"Missing required field '{param}'."
        else:
            message = f"Invalid '{param}': {err['msg']} (got {got})."
        raise APIError(400, message, param=param, code="invalid_value") from None
    if not any(m.role in ("user",) for m in req.messages):
        raise bad_request("'messages' must contain at least one user message.", param="messages")
    if all(not m.text().strip() for m in req.messages if m.role == "user"):
        raise bad_request("The conversation is empty: every user message has empty content.", param="messages")
    return req
