"""The answer contract: what a routing answer is, in one place.

    schema (data/schema.py: the closed label sets)
      -> ANSWER_JSON_SCHEMA   the answer as a JSON Schema (the server constrains decoding with it)
      -> answer_json(...)     the training target: one JSON object, keys in ANSWER_KEYS order
                              (written in data/schema.py, below this module; re-exported here)
      -> parse_answer(text)   strict: one JSON object, exactly the four keys, allowed labels, a reply
      -> INVALID              the predicted label of an answer that does not parse

Every scorer reads answers through this module: Day 2's table and Day 3's comparison
(`loraweek.metrics.answers`), Day 4's metrics (`loraweek.metrics.classification`), the server's
validation and its structured output (`loraweek.serving`).  `parse_answer` is strict on purpose:
an answer counts only if the downstream code would accept it.  Day 2's exercise has the student
write it; the hidden tests compare theirs with this one.
"""
from __future__ import annotations

import json

from loraweek.data.schema import INTENTS, LANGUAGES, PRIORITIES, answer_json  # noqa: F401  (part of the contract)

ANSWER_KEYS = ("intent", "priority", "language", "reply")
INVALID = "<invalid>"   # not a label of any field, so it can never be mistaken for a right answer

# The answer exactly as `parse_answer` accepts it, keys in training order.  The reply must hold a
# non-space character (parse_answer refuses a blank reply; the ci model once wrote " " for an odd
# message); xgrammar matches `pattern` against the whole string.
ANSWER_JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": list(INTENTS)},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "language": {"type": "string", "enum": list(LANGUAGES)},
        "reply": {"type": "string", "pattern": ".*\\S.*"},
    },
    "required": list(ANSWER_KEYS),
    "additionalProperties": False,
}


def parse_answer(text: str) -> dict | None:
    """The answer as a dict if it is valid routing JSON, else None."""
    try:
        obj = json.loads(text.strip())
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(obj, dict) or set(obj) != set(ANSWER_KEYS):
        return None
    if obj["intent"] not in INTENTS or obj["priority"] not in PRIORITIES or obj["language"] not in LANGUAGES:
        return None
    if not isinstance(obj["reply"], str) or not obj["reply"].strip():
        return None
    return obj


def predicted_labels(answers, field: str = "intent") -> list[str]:
    """The field of each parsed answer, INVALID where the answer does not parse."""
    if field not in ANSWER_KEYS[:3]:
        raise ValueError(f"field must be one of {', '.join(ANSWER_KEYS[:3])}; got {field!r}")
    return [p[field] if p is not None else INVALID for p in map(parse_answer, answers)]
