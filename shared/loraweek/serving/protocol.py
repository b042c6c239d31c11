"""The chat-completions request: read the raw body safely, then validate it field by field.

The body is read by hand (not by FastAPI's automatic parsing) so that each failure
gets a precise OpenAI error instead of a 422 `{"detail": ...}` or a 500: too many
bytes (413), not UTF-8, not JSON, not an object, or a field of the wrong type (400,
with `param` naming the field).  Unknown fields are ignored, as vLLM does: clients send
`user`, `metadata` and other extras that change nothing here.  OpenAI fields that would change
the answer but are not implemented (`logprobs`, `tools`, ... in UNSUPPORTED) are refused by name.

What Python's `json` module accepts but no later step survives is refused here too (400):
nesting deeper than MAX_JSON_DEPTH (the C decoder recurses and raises RecursionError),
NaN/Infinity and numbers out of a double's range (not JSON; a response holding them cannot
be written), integers of more than MAX_INT_DIGITS digits (Python's int-string limit raises
a ValueError) and lone UTF-16 surrogates such as "\\ud800" (a str Python holds but UTF-8
cannot encode: the tokenizer and the response writer fail on it).  A duplicate key keeps
its last value, as JavaScript's JSON.parse does.
"""
from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError
from starlette.requests import ClientDisconnect, Request

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


SCHEMA_PARAM = "response_format.json_schema.schema"


class JSONSchemaFormat(BaseModel):
    """OpenAI's `response_format.json_schema`; the schema itself is checked by structured.py."""
    model_config = ConfigDict(populate_by_name=True)
    name: StrictStr = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: StrictStr | None = None
    schema_: object = Field(default=None, alias="schema")   # `schema` would shadow a BaseModel method
    strict: StrictBool | None = None     # always enforced here, as vLLM does


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


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


# A chat request nests 4 levels (body, messages, message, content part); tools and JSON schemas
# a few more.  64 is far above any real request and far below Python's recursion limit (1000),
# which the C JSON decoder, pydantic and json.dumps all recurse against.
MAX_JSON_DEPTH = 64
# The widest integer field is `seed` (< 2**63, 19 digits); converting a long digit string is
# quadratic, and past 4300 digits Python refuses with a ValueError.
MAX_INT_DIGITS = 100

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)    # a JSON string, or an unterminated one
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [{ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.get(b, 0) for b in range(256)]
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")              # how a surrogate gets into JSON text
_SURROGATE = re.compile("[\ud800-\udfff]")


class _BadLiteral(ValueError):
    """Raised by the decoder's hooks; carries the message for the client."""


def json_depth(raw: bytes) -> int:
    """How deep `raw` nests [ and { outside strings, without recursing: drop the strings and
    everything but brackets (C-speed regex and bytes.translate), then the running sum of
    +1/-1 (itertools, also C).  For any prefix a parser accepts, this is its depth."""
    skeleton = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, skeleton)), default=0)


def _constant(name: str):
    raise _BadLiteral(f"{name} is not a JSON value (JSON has no NaN or Infinity); send null or a finite number.")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):     # 1e400 parses as inf, which no JSON response can carry
        raise _BadLiteral(f"the number {text[:40]} is out of range (a double ends near 1.8e308).")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _BadLiteral(f"an integer of {len(text.lstrip('-')):,} digits; the limit is {MAX_INT_DIGITS}.")
    return int(text)


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")   # a surrogate becomes \\ud800


def first_unencodable(obj) -> tuple[str, str, int] | None:
    """(param, the text, index) of the first string or key, in document order, that UTF-8 cannot
    encode (a lone surrogate), or None.  Iterative: the depth is bounded, but a loop costs nothing."""
    stack = [("", obj)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            hit = _SURROGATE.search(node)
            if hit:
                return path, node, hit.start()
        elif isinstance(node, dict):
            children = []
            for key, value in node.items():
                child = f"{path}.{_printable(key)}" if path else _printable(key)
                hit = _SURROGATE.search(key)
                if hit:
                    return child, key, hit.start()
                children.append((child, value))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(node))))
    return None


def _too_deep(how: str) -> APIError:
    return bad_request(f"Request body is JSON nested deeper than {MAX_JSON_DEPTH} levels ({how}); "
                       "a chat request needs a handful.", code="invalid_json")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) as soon as it passes `limit` bytes: a 10 MB body is never buffered whole."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(f"Request body is {declared} bytes; the limit is {limit} bytes.")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(f"Request body exceeds the limit of {limit} bytes.")
            chunks.append(chunk)
    except ClientDisconnect:   # the client left mid-body: nobody reads the answer, but it is no 500
        raise APIError(499, "The client closed the connection before sending the whole body.",
                       code="client_closed_request") from None
    return b"".join(chunks)


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
    # counting brackets is enough for almost every body; only one with many of them is scanned
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
        depth = json_depth(raw)
        if depth > MAX_JSON_DEPTH:
            raise _too_deep(f"{depth:,} levels deep")
    try:
        obj = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise bad_request(f"Request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
                          code="invalid_json") from None
    except _BadLiteral as exc:
        raise bad_request(f"Request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:     # only if the stack was already deep: the scan above bounds the depth
        raise _too_deep("too deep for this server's stack") from None
    if not isinstance(obj, dict):
        raise bad_request(f"Request body must be a JSON object, got a JSON {type(obj).__name__}.")
    if _SURROGATE_ESCAPE.search(raw):     # the only way a surrogate gets in: raw UTF-8 cannot hold one
        bad = first_unencodable(obj)
        if bad:
            param, value, at = bad
            raise bad_request(f"Invalid '{param}': the text is not encodable as UTF-8: it holds a lone UTF-16 "
                              f"surrogate ({_printable(value[at])}) at character {at}. Send a character beyond "
                              "U+FFFF as itself or as a complete surrogate pair.", param=param,
                              code="invalid_encoding")
    return obj


def _param(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("str", "list[TextPart]", "function-after", "union") and not str(part).startswith(("list[", "float", "int")):
            out += ("." if out else "") + str(part)
    return out


# OpenAI fields this server does not implement, with the values that ask for nothing: anything
# else is refused by name (a client asking for logprobs or tools must not get an answer without them).
UNSUPPORTED = {
    "logprobs": ((None, False), "log-probabilities are not returned by this server"),
    "top_logprobs": ((None, 0), "log-probabilities are not returned by this server"),
    "tools": ((None,), "tool calling is not supported: the router answers with routing JSON "
                       "(use response_format for structured output)"),
    "tool_choice": ((None, "none"), "tool calling is not supported"),
    "functions": ((None,), "function calling is not supported"),
    "function_call": ((None, "none"), "function calling is not supported"),
}


def _refuse_unsupported(obj: dict) -> None:
    for name, (off, why) in UNSUPPORTED.items():
        if obj.get(name) not in off:
            raise APIError(400, f"Unsupported parameter: '{name}': {why}.", param=name, code="unsupported_parameter")


def _check_response_format(req: ChatRequest) -> None:
    fmt = req.response_format
    if fmt is None or fmt.type != "json_schema":
        return
    if fmt.json_schema is None:
        raise bad_request("Missing required field 'response_format.json_schema' (type 'json_schema' needs "
                          "{\"name\": ..., \"schema\": {...}}).", param="response_format.json_schema")
    if not isinstance(fmt.json_schema.schema_, dict):
        got = "nothing" if fmt.json_schema.schema_ is None else f"a JSON {type(fmt.json_schema.schema_).__name__}"
        raise bad_request(f"Invalid '{SCHEMA_PARAM}': expected a JSON Schema object such as "
                          f"{{\"type\": \"object\", \"properties\": {{...}}}}, got {got}.", param=SCHEMA_PARAM,
                          code="invalid_json_schema")


def parse_chat_request(obj: dict) -> ChatRequest:
    """Validate a decoded body; the first problem becomes a 400 naming its field."""
    _refuse_unsupported(obj)
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
    _check_response_format(req)
    if not any(m.role in ("user",) for m in req.messages):
        raise bad_request("'messages' must contain at least one user message.", param="messages")
    if all(not m.text().strip() for m in req.messages if m.role == "user"):
        raise bad_request("The conversation is empty: every user message has empty content.", param="messages")
    return req
