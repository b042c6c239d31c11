"""The structured part of an answer: JSON validity, per-field accuracy, intent F1.

An answer that is not valid routing JSON is *not dropped*: it becomes the predicted
label INVALID, a wrong answer for whatever the true intent was.  Dropping it would
score the model only on the answers it managed to format, and flatter it.

F1 conventions (checked against scikit-learn in tests/test_metrics.py):
- per-class F1 for each of the ten intents; INVALID is a prediction, never a true label;
- macro = unweighted mean over the ten intents (every intent counts, rare ones too):
  ``f1_score(y_true, y_pred, labels=INTENTS, average="macro", zero_division=0)``;
- weighted = mean weighted by each intent's support (same call, ``average="weighted"``);
- micro = global counts over all eleven labels, which for one label per message equals accuracy:
  ``f1_score(y_true, y_pred, labels=INTENTS + (INVALID,), average="micro")``.
"""
from __future__ import annotations

import json

import numpy as np

from loraweek.data.answer import INVALID, parse_answer
from loraweek.data.schema import INTENTS
from loraweek.metrics._checks import as_text, check_pair

LABELS = INTENTS + (INVALID,)
FIELDS = ("intent", "priority", "language")


def parse_answers(predictions) -> list[dict | None]:
    """Each answer parsed by the course's strict parser (None = empty or invalid: a scored failure)."""
    return [parse_answer(as_text(p, "predictions")) for p in predictions]


def reference_dict(ref, name: str = "references") -> dict:
    """A reference as a dict: a HelpdeskExample, a dict, or its target JSON string."""
    if hasattr(ref, "target"):
        return ref.target()
    if isinstance(ref, str):
        try:
            ref = json.loads(ref)
        except json.JSONDecodeError as e:
            raise ValueError(f"{name} must hold target JSON strings; could not parse {ref[:60]!r}: {e}") from None
    if not isinstance(ref, dict) or not set(FIELDS) <= set(ref):
        raise ValueError(f"{name} items need the fields {', '.join(FIELDS)}; got {ref!r}")
    return ref


def json_validity(predictions) -> dict:
    if isinstance(predictions, str) or len(predictions) == 0:
        raise ValueError("predictions must be a non-empty list of answers")
    parsed = parse_answers(predictions)
    return {"json_valid": sum(p is not None for p in parsed) / len(parsed)}


def field_matches(predictions, references) -> dict[str, np.ndarray]:
    """Per field, 1.0 where the answer has the reference's label (an invalid answer: 0 on every field)."""
    predictions, references = check_pair(predictions, references)
    parsed = parse_answers(predictions)
    refs = [reference_dict(r) for r in references]
    return {f: np.array([p is not None and p[f] == r[f] for p, r in zip(parsed, refs)], dtype=float)
            for f in FIELDS}


def field_accuracy(predictions, references) -> dict:
    """Accuracy per field; an invalid answer is wrong on every field."""
    return {f"{f}_accuracy": float(hits.mean()) for f, hits in field_matches(predictions, references).items()}


def predicted_intents(predictions) -> list[str]:
    """The intent of each answer, or INVALID when the answer is not valid routing JSON."""
    return [p["intent"] if p else INVALID for p in parse_answers(predictions)]


def _check_labels(values, allowed, name):
    bad = sorted({v for v in values if v not in allowed})
    if bad:
        raise ValueError(f"{name} contains unknown labels {bad[:5]}; expected one of {', '.join(allowed)}")


def confusion_matrix(y_true, y_pred, labels=LABELS) -> np.ndarray:
    """counts[i, j] = how many messages of true label labels[i] got predicted label labels[j]."""
    y_true, y_pred = check_pair(y_true, y_pred, "y_true", "y_pred")
    _check_labels(y_true, labels, "y_true")
    _check_labels(y_pred, labels, "y_pred")
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(counts, ([index[t] for t in y_true], [index[p] for p in y_pred]), 1)
    return counts


def f1_from_confusion(counts: np.ndarray, n_classes: int = len(INTENTS)) -> dict:
    """Per-class, macro, weighted and micro F1 from a confusion matrix whose first
    `n_classes` rows are the true classes (the rest: prediction-only labels such as INVALID)."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] < n_classes:
        raise ValueError(f"counts must be a square matrix with at least {n_classes} rows, got shape {counts.shape}")
    tp = np.diag(counts)[:n_classes].astype(float)
    fp = counts[:, :n_classes].sum(axis=0) - tp       # predicted as the class, truly another
    fn = counts[:n_classes].sum(axis=1) - tp          # truly the class, predicted otherwise (INVALID too)
    denom = 2 * tp + fp + fn
    per_class = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)  # zero_division=0
    support = counts[:n_classes].sum(axis=1)
    total = counts.sum()
    return {"per_class": per_class,
            "macro_f1": float(per_class.mean()),
            "weighted_f1": float((per_class * support).sum() / support.sum()) if support.sum() else 0.0,
            "micro_f1": float(np.trace(counts) / total) if total else 0.0}


def intent_f1(predictions, references) -> dict:
    """micro/macro/weighted F1 of the intents (invalid answers count as the wrong class INVALID)."""
    predictions, references = check_pair(predictions, references)
    y_true = [reference_dict(r)["intent"] for r in references]
    _check_labels(y_true, INTENTS, "references")
    scores = f1_from_confusion(confusion_matrix(y_true, predicted_intents(predictions)))
    scores["per_class"] = dict(zip(INTENTS, scores["per_class"].round(4).tolist()))
    return scores
