"""Structured output by construction (issue 21, item 9): `response_format` constrains decoding.

The real server of test_serving.py (shared, session-scoped) and the official `openai` client:
short out-of-distribution messages, which made the ci model slip out of JSON (the old server
then answered 502 for 20 of 20), now all parse, with json_object (the routing schema) and with
json_schema; a client's own schema is honoured, also when streaming, and also when constrained
and free requests share a batch.  What the server does not implement (logprobs, tools) and
schemas it cannot enforce are 400s naming the field.
"""
from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import jsonschema
import openai
import pytest
import torch
from pydantic import BaseModel

from loraweek.data.answer import parse_answer
from loraweek.serving import structured
from loraweek.serving.errors import APIError
from loraweek.serving.loadtest import SHORT_MESSAGES
from loraweek.serving.protocol import SCHEMA_PARAM, ResponseFormat
from loraweek.serving.structured import ROUTING_SCHEMA, StructuredOutput, mask_logits, schema_problem
from test_serving import MESSAGES, MODEL, ask, client, metric  # noqa: F401  (client: a fixture)

OOD = SHORT_MESSAGES[:12]


def schema_format(schema, name: str = "x") -> dict:
    """OpenAI's response_format for a JSON Schema."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


ROUTING_FORMAT = schema_format(ROUTING_SCHEMA, "routing")


def ask_all(client, messages, **kw):    # noqa: F811  (client: the fixture's value)
    """Every message at once: the server batches them, as it would real traffic."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda m: ask(client, m, max_tokens=160, **kw), messages))


# ---------------------------------------------------------------- valid by construction
@pytest.mark.parametrize("fmt", [{"type": "json_object"}, ROUTING_FORMAT], ids=["json_object", "json_schema"])
def test_short_ood_messages_all_give_routing_json(client, fmt):  # noqa: F811
    for message, r in zip(OOD, ask_all(client, OOD, response_format=fmt)):
        text = r.choices[0].message.content
        assert r.choices[0].finish_reason == "stop", (message, text)
        jsonschema.validate(json.loads(text), ROUTING_SCHEMA)
        assert parse_answer(text) is not None, (message, text)


def test_constrained_and_free_rows_share_a_batch(client):  # noqa: F811
    """Free answers are the ones each message gets alone (the mask touched only its rows)."""
    alone = [ask(client, m, max_tokens=48).choices[0].message.content for m in MESSAGES[:4]]
    with ThreadPoolExecutor(8) as pool:
        free = [pool.submit(ask, client, m, max_tokens=48) for m in MESSAGES[:4]]
        constrained = [pool.submit(ask, client, m, max_tokens=160, response_format={"type": "json_object"})
                       for m in OOD[:4]]
        assert [f.result().choices[0].message.content for f in free] == alone
        assert all(parse_answer(f.result().choices[0].message.content) for f in constrained)


class Ticket(BaseModel):
    sentiment: Literal["angry", "calm", "happy"]
    needs_human: bool
    order_count: int


def test_a_clients_own_schema_is_honoured(client):  # noqa: F811
    # the official client's helper: a pydantic model becomes a strict json_schema, the answer an object
    parsed = client.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                           response_format=Ticket, max_tokens=64, temperature=0)
    assert isinstance(parsed.choices[0].message.parsed, Ticket)
    schema = {"type": "object", "properties": {
        "code": {"type": "string", "pattern": "DH[0-9]{3}"},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"enum": ["vi", "en"]}, "minItems": 1, "maxItems": 2},
        "kind": {"const": "ticket"}}, "required": ["code", "stars", "tags", "kind"], "additionalProperties": False}
    for r in ask_all(client, OOD[:4], response_format=schema_format(schema)):
        jsonschema.validate(json.loads(r.choices[0].message.content), schema)


def test_streaming_with_response_format_gives_valid_json(client):  # noqa: F811
    for fmt, check in (({"type": "json_object"}, parse_answer), (ROUTING_FORMAT, parse_answer),
                       (schema_format(Ticket.model_json_schema()), Ticket.model_validate_json)):
        chunks = list(ask(client, "???", max_tokens=160, stream=True, response_format=fmt))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert check(text), text


def test_an_answer_cut_by_max_tokens_is_returned_with_length(client, server):  # noqa: F811  (client)
    """As OpenAI does: the partial JSON with finish_reason "length" (no more 502)."""
    before = metric(server, "router_invalid_json_total")
    r = ask(client, OOD[0], max_tokens=5, response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "length" and r.choices[0].message.content.startswith('{"')
    assert metric(server, "router_invalid_json_total") == before + 1


def test_min_tokens_yields_to_a_completed_grammar(client):  # noqa: F811
    """min_tokens holds end-of-turn back; once the JSON is complete nothing else is allowed."""
    r = ask(client, "hi", max_tokens=200, extra_body={"min_tokens": 200}, response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "stop" and parse_answer(r.choices[0].message.content)


def test_an_unsatisfiable_schema_ends_the_answer_instead_of_failing(client):  # noqa: F811
    schema = {"type": "object", "required": ["a"], "additionalProperties": False}   # compiles; nothing fits
    r = ask(client, "hi", max_tokens=16, response_format=schema_format(schema))
    assert r.choices[0].finish_reason == "stop" and len(r.choices[0].message.content) < 16


# ---------------------------------------------------------------- refused by name
REFUSED = [
    (dict(logprobs=True), "logprobs"),
    (dict(logprobs=True, top_logprobs=3), "logprobs"),
    (dict(tools=[{"type": "function", "function": {"name": "route", "parameters": {"type": "object"}}}]), "tools"),
    (dict(tool_choice="auto"), "tool_choice"),
    (dict(response_format={"type": "json_schema"}), "response_format.json_schema"),
    (dict(response_format=schema_format({}, name="bad name!")), "response_format.json_schema.name"),
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "x"}}), SCHEMA_PARAM),
    (dict(response_format=schema_format([1, 2])), SCHEMA_PARAM),
    (dict(response_format=schema_format({"type": "foo"})), SCHEMA_PARAM),
    (dict(response_format=schema_format({"type": "string", "pattern": "("})), SCHEMA_PARAM),
    (dict(response_format=schema_format({"properties": {"a": {"type": "array", "uniqueItems": True}}})), SCHEMA_PARAM),
]


@pytest.mark.parametrize("kwargs,param", REFUSED, ids=[p for _, p in REFUSED])
def test_unsupported_fields_and_bad_schemas_are_400_naming_the_field(client, kwargs, param):  # noqa: F811
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, "hi", max_tokens=4, **kwargs)
    assert err.value.param == param and param.split(".")[-1] in err.value.message, err.value.body


def test_fields_that_ask_for_nothing_are_accepted(client):  # noqa: F811
    r = ask(client, "hi", max_tokens=2, logprobs=False, tool_choice="none", response_format={"type": "text"})
    assert r.choices[0].logprobs is None


# ---------------------------------------------------------------- the pieces, in-process
def test_schema_problem_names_what_would_be_ignored():
    assert schema_problem(ROUTING_SCHEMA) is None
    assert "'not' at #/properties/a" in schema_problem({"properties": {"a": {"not": {"type": "string"}}}})
    assert "'contains' at #/anyOf/1" in schema_problem({"anyOf": [{}, {"contains": {}}]})
    assert "allOf" in schema_problem({"allOf": [{"type": "string"}, {"minLength": 2}]})
    assert "'$ref'" in schema_problem({"$ref": "https://example.com/s.json"})
    assert "JSON list" in schema_problem([])


@pytest.fixture(scope="module")
def grammars():
    from transformers import AutoTokenizer

    from loraweek.models.tiny import ensure_ci_model

    tok = AutoTokenizer.from_pretrained(ensure_ci_model())
    return tok, StructuredOutput(tok, len(tok), [tok.eos_token_id])


def test_mask_touches_only_constrained_rows(grammars):
    tok, out = grammars
    logits = torch.randn(3, len(tok))
    masked = mask_logits(logits.clone(), [None, structured.Constraint(out.routing), None])
    assert torch.equal(masked[0], logits[0]) and torch.equal(masked[2], logits[2])
    allowed = torch.isfinite(masked[1]).nonzero().flatten().tolist()
    assert allowed and all(tok.decode([t]).startswith("{") for t in allowed)   # routing JSON opens with {


def test_min_tokens_never_picks_a_token_the_grammar_forbids():
    from loraweek.serving.engine import GenRequest, _Row

    row = _Row(GenRequest(MODEL, [1], 8, emit=print, min_tokens=8), "cpu")
    only_end = torch.full((10,), float("-inf"))
    only_end[7] = 0.0                     # the grammar is complete: only end-of-turn (id 7) is left
    assert row.pick(only_end, eos=[3, 7]) == 7


def test_a_slow_compile_is_a_400_not_a_hang(grammars, monkeypatch):
    _, out = grammars
    monkeypatch.setattr(structured, "COMPILE_TIMEOUT_S", 1e-4)
    fmt = ResponseFormat.model_validate(schema_format({"type": "string", "pattern": "(a|b)*c{5,400}"}))
    with pytest.raises(APIError) as err:
        asyncio.run(out.grammar_for(fmt))
    assert err.value.status == 400 and err.value.param == SCHEMA_PARAM and "did not compile" in err.value.message


def _accepts(matcher, text: str) -> int:
    """How many characters of `text` the grammar accepts before refusing one."""
    for i, ch in enumerate(text):
        if not matcher.accept_string(ch):
            return i
    return len(text)


def test_an_integer_without_bounds_ends_within_the_json_safe_range(grammars):
    """A model repeating a digit (CI's ci model: "order_count": 8888...) must still close the object."""
    import xgrammar as xgr

    tok, out = grammars
    prefix = '{"sentiment": "angry", "needs_human": true, "order_count": '
    m = xgr.GrammarMatcher(out.compile(Ticket.model_json_schema()))
    assert _accepts(m, prefix + "8" * 30) == len(prefix) + 16          # 2**53 - 1 has 16 digits
    m = xgr.GrammarMatcher(out.compile(Ticket.model_json_schema()))
    assert _accepts(m, prefix + str(structured.JSON_SAFE_INTEGER) + "}") == len(prefix) + 17 and m.is_terminated() is False
    assert m.accept_token(tok.eos_token_id) and m.is_terminated()
    m = xgr.GrammarMatcher(out.compile(Ticket.model_json_schema()))
    assert _accepts(m, prefix + "-" + str(structured.JSON_SAFE_INTEGER)) == len(prefix) + 17
    # a client's own bound is kept, numbers and the schema passed in are untouched
    own = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 99}, "x": {"type": "number"},
                                            "k": {"type": ["integer", "null"], "exclusiveMinimum": 0}}}
    bounded = structured.bound_integers(own)
    assert bounded["properties"]["n"] == {"type": "integer", "maximum": 99, "minimum": -structured.JSON_SAFE_INTEGER}
    assert bounded["properties"]["x"] == {"type": "number"} and "minimum" not in bounded["properties"]["k"]
    assert bounded["properties"]["k"]["maximum"] == structured.JSON_SAFE_INTEGER and "minimum" not in own["properties"]["n"]
    m = xgr.GrammarMatcher(out.compile(own))
    assert _accepts(m, '{"n": 100') == len('{"n": 10')
