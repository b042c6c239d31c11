"""One system's answers -> every Day 4 metric with a seeded bootstrap interval.

Corpus metrics (BLEU, chrF, macro-F1) are recomputed on each resample from per-example
sufficient statistics, the way sacrebleu's own paired bootstrap does it: sacrebleu's
`_extract_corpus_statistics` gives each sentence's n-gram counts once, and a resample
only adds them up (`_compute_score_from_stats`), so 1,000 resamples take well under a second.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loraweek.metrics import classification, stats, text
from loraweek.metrics._checks import check_pair

# metric -> does higher mean better (perplexity is added by the caller; lower is better)
METRICS = ("json_valid", "intent_accuracy", "priority_accuracy", "language_accuracy", "intent_macro_f1",
           "intent_weighted_f1", "intent_micro_f1", "reply_chrf", "reply_bleu", "reply_rougeL", "reply_exact_match")


@dataclass
class SystemScores:
    """Per-example outcomes of one system on one list of examples, and the functions that
    turn a subset of them (indices) into each metric."""
    n: int
    per_example: dict            # name -> np.ndarray, one value per example
    metric_fns: dict             # name -> fn(indices) -> float

    def point(self, name: str) -> float:
        return float(self.metric_fns[name](np.arange(self.n)))

    def interval(self, name: str, n_resamples: int = 1000, seed: int = 0) -> stats.Interval:
        return stats.bootstrap_ci(self.metric_fns[name], self.n, n_resamples=n_resamples, seed=seed)


def replies(answers) -> list[str]:
    """The reply of each valid answer; "" for an invalid one (a scored failure: no usable reply)."""
    return [p["reply"] if p else "" for p in classification.parse_answers(answers)]


def _sacrebleu_stats(metric, predictions, references):
    return np.array(metric._extract_corpus_statistics(predictions, [list(references)]), dtype=float)


def score_system(examples, answers) -> SystemScores:
    """examples: HelpdeskExample list; answers: the model's raw answers, aligned."""
    from sacrebleu.metrics import BLEU, CHRF

    examples, answers = check_pair(examples, answers, "examples", "answers")
    parsed = classification.parse_answers(answers)
    n = len(examples)
    per = {"json_valid": np.array([p is not None for p in parsed], dtype=float)}
    per.update({f"{f}_accuracy": hits for f, hits in classification.field_matches(answers, examples).items()})
    preds = [text.nfc(r) for r in replies(answers)]
    refs = [text.nfc(ex.reply) for ex in examples]
    per["reply_rougeL"] = np.array(text.sentence_rouge_l(preds, refs))
    per["reply_exact_match"] = np.array([p.strip() == r.strip() for p, r in zip(preds, refs)], dtype=float)
    bleu, chrf = BLEU(), CHRF()
    bleu_stats, chrf_stats = _sacrebleu_stats(bleu, preds, refs), _sacrebleu_stats(chrf, preds, refs)
    per["reply_chrf"] = np.array([chrf._compute_score_from_stats(list(s)).score / 100 for s in chrf_stats])
    index = {label: i for i, label in enumerate(classification.LABELS)}
    y_true = np.array([index[ex.intent] for ex in examples])
    y_pred = np.array([index[label] for label in classification.predicted_intents(answers)])
    k = len(classification.LABELS)

    def f1(idx, which):
        counts = np.bincount(y_true[idx] * k + y_pred[idx], minlength=k * k).reshape(k, k)
        return classification.f1_from_confusion(counts)[which]

    fns = {name: (lambda idx, v=per[name]: v[idx].mean()) for name in per}
    fns["reply_chrf"] = lambda idx: chrf._compute_score_from_stats(list(chrf_stats[idx].sum(0))).score / 100
    fns["reply_bleu"] = lambda idx: bleu._compute_score_from_stats(list(bleu_stats[idx].sum(0))).score / 100
    for avg in ("macro", "weighted", "micro"):
        fns[f"intent_{avg}_f1"] = lambda idx, a=avg: f1(idx, f"{a}_f1")
    return SystemScores(n, per, fns)


def compare(before: SystemScores, after: SystemScores, name: str, n_resamples: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap of after - before on the same resampled examples."""
    if before.n != after.n:
        raise ValueError(f"before and after must score the same examples, got {before.n} and {after.n}")
    return stats.paired_bootstrap(before.metric_fns[name], after.metric_fns[name], before.n, n_resamples, seed=seed)
