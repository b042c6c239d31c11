"""Scoring the model's routing answers (the tables of Days 2 and 3): JSON validity, field accuracy,
intent macro-F1, the majority baseline.  Once `loraweek.evaluation` (that old path still imports).

What an answer is (and `parse_answer`, `INVALID`) is the answer contract, `loraweek.data.answer`;
the scores are Day 4's (`loraweek.metrics.classification`), so every table of the week computes
them the same way.  `parse_answer`, `ANSWER_KEYS`, `INVALID` and `predicted_labels` are
re-exported here for notebooks written against this module's old path (tests/test_answer_contract.py).
"""
from __future__ import annotations

from loraweek.data.answer import ANSWER_KEYS, INVALID, answer_json, parse_answer, predicted_labels  # noqa: F401
from loraweek.metrics import classification


def intent_macro_f1(examples, answers: list[str]) -> float:
    """Macro-F1 over the 10 intents (every intent weighs the same, however rare).

    An invalid answer predicts INVALID: a miss for its true intent, a false positive for none."""
    return classification.intent_f1(answers, examples)["macro_f1"] if examples else 0.0


def score_answers(examples, answers: list[str]) -> dict:
    """JSON validity, per-field accuracy (an invalid answer counts as wrong on every field) and
    intent macro-F1."""
    if len(examples) != len(answers):
        raise ValueError(f"answers: expected one per example ({len(examples)}), got {len(answers)}")
    if not examples:
        return dict.fromkeys(SCORE_ROWS, 0.0)
    scores = classification.json_validity(answers)
    scores.update(classification.field_accuracy(answers, examples))
    scores["intent_macro_f1"] = intent_macro_f1(examples, answers)
    return scores


def majority_answers(train_examples, examples) -> list[str]:
    """The majority-class baseline as answers: every message gets the most frequent training
    intent and priority, its own language, and a fixed reply (valid JSON by construction)."""
    from collections import Counter

    intent = Counter(ex.intent for ex in train_examples).most_common(1)[0][0]
    priority = Counter(ex.priority for ex in train_examples).most_common(1)[0][0]
    return [answer_json(intent, priority, ex.language, "OK") for ex in examples]


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
