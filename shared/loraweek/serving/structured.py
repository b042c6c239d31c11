"""Structured output by construction: `response_format` turned into a grammar the decoder obeys.

Validating JSON after generation (and answering 502) fails exactly where a router is needed
most: a short, odd message ("Tôi muốn hoàn tiền 3", "???") pushes a small model out of JSON.
Real servers (vLLM, SGLang, OpenAI) instead mask, at every step, each token that would break
the format, so the answer is valid by construction.  We do the same with xgrammar, the
library vLLM uses by default: a JSON Schema is compiled once against the tokenizer, each
request gets a `GrammarMatcher` (its own position in the grammar), and one call per step
masks the constrained rows of a batch, leaving unconstrained rows untouched.

    {"type": "json_object"}                     -> ROUTING_SCHEMA (this server is a router)
    {"type": "json_schema", "json_schema":      -> the client's schema, compiled on a worker
        {"name": ..., "schema": {...}}}            thread with a time limit, cached by xgrammar

The schema is refused (400, naming `response_format.json_schema.schema`) when xgrammar cannot
compile it, and also when it uses a keyword that xgrammar would silently ignore: an answer
that breaks a constraint the client asked for is worse than a clear refusal.
Only `max_tokens` (finish_reason "length") or a `stop` string can still cut an answer short,
as with OpenAI.  One thing the grammar adds: an `integer` without bounds is held to the range
JSON numbers keep exactly everywhere (I-JSON, RFC 7493 section 2.2: at most 2**53 - 1 in size, so 16
digits).  Unbounded, a small model that repeats a digit ("order_count": 8888...) never closes
the object and every such answer ends at max_tokens, invalid; this happened on CI's build of the
ci model.  A client's own `minimum` / `maximum` are kept.  Strings and `number`s stay unbounded
(a reply may be long; xgrammar's bounded numbers would also cap decimals at 6).
"""
from __future__ import annotations

import asyncio
import copy
import json
import re
from concurrent.futures import ThreadPoolExecutor

import torch
import xgrammar as xgr

from loraweek.data.answer import ANSWER_JSON_SCHEMA
from loraweek.serving.errors import bad_request
from loraweek.serving.protocol import SCHEMA_PARAM, ResponseFormat

# The routing answer as the answer contract's JSON Schema (`loraweek.data.answer`: exactly what
# `parse_answer` accepts, keys in training order).
ROUTING_SCHEMA = ANSWER_JSON_SCHEMA

# Keywords xgrammar 0.2.9 accepts but does not enforce (its json_schema_converter.cc skips them
# or logs "ignoring"); refused so that a client never gets an answer breaking its own schema.
IGNORED_KEYWORDS = ("not", "if", "then", "else", "dependentRequired", "dependentSchemas", "uniqueItems",
                    "contains", "minContains", "maxContains")
# Where a JSON Schema nests schemas (as an object of them, a list of them, or one).
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "propertyNames", "unevaluatedProperties", "unevaluatedItems")
COMPILE_TIMEOUT_S = 10.0        # a pattern such as "c{5,9000}" compiles for seconds; the client waits no longer
MAX_SCHEMA_BYTES = 100_000
CACHE_BYTES = 64 * 2**20        # compiled grammars kept by xgrammar; distinct client schemas must not grow memory
JSON_SAFE_INTEGER = 2**53 - 1   # I-JSON's interoperable range (RFC 7493 section 2.2)
_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: (Check failed: )?")


def schema_problem(schema: dict) -> str | None:
    """Why xgrammar would not enforce `schema`, or None.  Walks the nested schemas without
    recursion (the body's depth is already bounded, but a loop costs nothing)."""
    if not isinstance(schema, dict):
        return f"expected a JSON Schema object, got a JSON {type(schema).__name__}"
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        return f"the schema is over {MAX_SCHEMA_BYTES:,} bytes"
    stack = [("#", schema)]
    while stack:
        where, node = stack.pop()
        if not isinstance(node, dict):
            continue   # a boolean schema, or a malformed one that the compiler names
        for key in IGNORED_KEYWORDS:
            if key in node:
                return f"keyword '{key}' at {where} is not supported by this server's constrained decoding"
        if node.get("type") == "number" and "multipleOf" in node:
            return f"keyword 'multipleOf' at {where} is only supported for type integer"
        if isinstance(node.get("allOf"), list) and len(node["allOf"]) > 1:
            return f"'allOf' at {where} with more than one schema is not supported; merge them into one"
        if isinstance(node.get("$ref"), str) and not node["$ref"].startswith("#"):
            return f"'$ref' at {where} must point inside the schema ('#/...'), got {node['$ref'][:80]!r}"
        stack += _nested(where, node)
    return None


def _nested(where: str, node: dict) -> list[tuple[str, object]]:
    """The schemas directly inside `node`, with their JSON pointers."""
    out = []
    for key in _SCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            out += [(f"{where}/{key}/{name}", sub) for name, sub in node[key].items()]
    for key in _SCHEMA_LISTS:
        if isinstance(node.get(key), list):
            out += [(f"{where}/{key}/{i}", sub) for i, sub in enumerate(node[key])]
    return out + [(f"{where}/{key}", node[key]) for key in _SCHEMA_ONE if key in node]


def bound_integers(schema: dict) -> dict:
    """A copy of `schema` whose integers without a lower / upper bound get +-JSON_SAFE_INTEGER
    (see the module docstring); a client's own bounds, and everything else, unchanged."""
    schema = copy.deepcopy(schema)
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        kinds = node.get("type")
        # only a pure integer: a bound on ["integer", "number"] would also bound the number's decimals
        if kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds and "number" not in kinds):
            if "minimum" not in node and "exclusiveMinimum" not in node:
                node["minimum"] = -JSON_SAFE_INTEGER
            if "maximum" not in node and "exclusiveMaximum" not in node:
                node["maximum"] = JSON_SAFE_INTEGER
        stack += [sub for _, sub in _nested("#", node)]
    return schema


def _compiler_message(exc: Exception) -> str:
    """xgrammar's C++ message without its '[time] file.cc:line:' prefix."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return _LOG_PREFIX.sub("", lines[0] if lines else type(exc).__name__)


def _schema_error(problem: str):
    return bad_request(f"Invalid '{SCHEMA_PARAM}': {problem}. Expected a JSON Schema object that this server can "
                       "enforce (type, properties, required, enum, const, anyOf, items, pattern, $ref/$defs, ...).",
                       param=SCHEMA_PARAM, code="invalid_json_schema")


class Constraint:
    """One request's position in its grammar."""

    def __init__(self, grammar: xgr.CompiledGrammar):
        self.matcher = xgr.GrammarMatcher(grammar)
        self.dead = False          # no token can continue (an unsatisfiable schema): the row ends

    def accept(self, token: int) -> None:
        if not self.matcher.accept_token(token):
            self.dead = True


def mask_logits(logits: torch.Tensor, constraints: list[Constraint | None]) -> torch.Tensor:
    """The batch's next-token logits with each constrained row's forbidden tokens at -inf.

    One bitmask for the whole batch and one kernel call (`indices`: only the constrained rows),
    so requests with and without `response_format` share a batch.  float32: the CPU kernel's
    dtype, and what sampling computes in anyway."""
    rows = [i for i, c in enumerate(constraints) if c is not None]
    if not rows:
        return logits
    logits = logits.to(torch.float32)
    bitmask = xgr.allocate_token_bitmask(len(constraints), logits.shape[-1])
    for i in rows:
        constraints[i].matcher.fill_next_token_bitmask(bitmask, i)
        if not bitmask[i].any():
            constraints[i].dead = True
    xgr.apply_token_bitmask_inplace(logits, bitmask.to(logits.device), indices=rows)
    return logits


class StructuredOutput:
    """The grammars of one served model: its tokenizer's info, a compiler and the routing grammar."""

    def __init__(self, tokenizer, vocab_size: int, stop_ids: list[int]):
        # vocab_size: the model's logits width, which may exceed len(tokenizer) (padded embeddings)
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_ids)
        self.compiler = xgr.GrammarCompiler(info, cache_limit_bytes=CACHE_BYTES)
        self.routing = self.compile(ROUTING_SCHEMA)
        # one worker: a slow client schema burns one core, never the event loop or the decoder
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="loraweek-grammar")

    @classmethod
    def for_served(cls, served) -> "StructuredOutput":
        return cls(served.tokenizer, served.model.config.vocab_size, served.eos_ids)

    def compile(self, schema: dict) -> xgr.CompiledGrammar:
        # compact separators (", ", ": "), as json.dumps writes the training targets; any
        # whitespace would also let a small model emit newlines until max_tokens
        return self.compiler.compile_json_schema(json.dumps(bound_integers(schema)), any_whitespace=False)

    async def grammar_for(self, fmt: ResponseFormat | None) -> xgr.CompiledGrammar | None:
        """The grammar a request's `response_format` asks for (None: free text), or a 400."""
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return self.routing
        schema = fmt.json_schema.schema_
        problem = schema_problem(schema)
        if problem:
            raise _schema_error(problem)
        work = asyncio.get_running_loop().run_in_executor(self._pool, self.compile, schema)
        try:
            return await asyncio.wait_for(work, COMPILE_TIMEOUT_S)   # xgrammar releases the GIL meanwhile
        except asyncio.TimeoutError:
            raise _schema_error(f"it did not compile within {COMPILE_TIMEOUT_S:.0f} s (long bounded repetitions "
                          "such as 'a{5,9000}' in a pattern are expensive)") from None
        except (RuntimeError, ValueError) as exc:      # how xgrammar reports a schema it cannot compile
            raise _schema_error(_compiler_message(exc)) from None
