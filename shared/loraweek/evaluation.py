"""Reading the model's answers: JSON validity and field accuracy.

Generation is free text; routing needs fields.  `parse_answer` is strict on
purpose: an answer counts only if it is one JSON object with the four keys and
allowed labels, because that is what the downstream code will accept.
"""
from __future__ import annotations

import json

from loraweek.data.schema import INTENTS, LANGUAGES, PRIORITIES

ANSWER_KEYS = ("intent", "priority", "language", "reply")


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


def score_answers(examples, answers: list[str]) -> dict:
    """JSON validity and per-field accuracy (an invalid answer counts as wrong on every field)."""
    parsed = [parse_answer(a) for a in answers]
    n = max(len(examples), 1)
    scores = {"json_valid": sum(p is not None for p in parsed) / n}
    for field in ("intent", "priority", "language"):
        scores[f"{field}_accuracy"] = sum(p is not None and p[field] == getattr(ex, field)
                                          for p, ex in zip(parsed, examples)) / n
    return scores
