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


INVALID = "<invalid>"  # the predicted label of an answer that is not valid routing JSON


def predicted_labels(answers: list[str], field: str = "intent") -> list[str]:
    """The field of each parsed answer, INVALID where the answer does not parse."""
    return [p[field] if p is not None else INVALID for p in map(parse_answer, answers)]


def intent_macro_f1(examples, answers: list[str]) -> float:
    """Macro-F1 over the 10 intents (every intent weighs the same, however rare).

    An invalid answer predicts INVALID: a miss for its true intent, a false positive for none."""
    from sklearn.metrics import f1_score

    return float(f1_score([ex.intent for ex in examples], predicted_labels(answers), labels=list(INTENTS),
                          average="macro", zero_division=0))


def score_answers(examples, answers: list[str]) -> dict:
    """JSON validity, per-field accuracy (an invalid answer counts as wrong on every field) and
    intent macro-F1."""
    if len(examples) != len(answers):
        raise ValueError(f"answers: expected one per example ({len(examples)}), got {len(answers)}")
    parsed = [parse_answer(a) for a in answers]
    n = max(len(examples), 1)
    scores = {"json_valid": sum(p is not None for p in parsed) / n}
    for field in ("intent", "priority", "language"):
        scores[f"{field}_accuracy"] = sum(p is not None and p[field] == getattr(ex, field)
                                          for p, ex in zip(parsed, examples)) / n
    scores["intent_macro_f1"] = intent_macro_f1(examples, answers) if examples else 0.0
    return scores


def majority_answers(train_examples, examples) -> list[str]:
    """The majority-class baseline as answers: every message gets the most frequent training
    intent and priority, its own language, and a fixed reply (valid JSON by construction)."""
    import json as _json
    from collections import Counter

    intent = Counter(ex.intent for ex in train_examples).most_common(1)[0][0]
    priority = Counter(ex.priority for ex in train_examples).most_common(1)[0][0]
    return [_json.dumps({"intent": intent, "priority": priority, "language": ex.language, "reply": "OK"})
            for ex in examples]


SCORE_ROWS = ("json_valid", "intent_accuracy", "priority_accuracy", "language_accuracy", "intent_macro_f1")


def score_table(tables: dict) -> str:
    """{split: {model: scores}} as text: one row per score, one column per split and model."""
    cols = [(split, name) for split, models in tables.items() for name in models]
    width = max([18] + [len(f"{s} {n}") + 2 for s, n in cols])
    lines = [f"{'':<18}" + "".join(f"{s + ' ' + n:>{width}}" for s, n in cols)]
    rows = [r for r in SCORE_ROWS if any(r in tables[s][n] for s, n in cols)]
    for row in rows:
        lines.append(f"{row:<18}" + "".join(f"{tables[s][n].get(row, float('nan')):>{width}.3f}" for s, n in cols))
    return "\n".join(lines)
