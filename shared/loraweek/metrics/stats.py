"""Is a difference real?  Seeded bootstrap intervals and paired tests.

The percentile bootstrap is written out (the notebook teaches it): resample the
examples with replacement, recompute the metric, take the 2.5th and 97.5th
percentiles.  Resampling *indices* makes it work for any metric, corpus-level ones
(macro-F1, corpus chrF) included.  tests/test_metrics.py checks it against
scipy.stats.bootstrap.  The paired test uses scipy's permutation test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def __str__(self):
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _check(n: int, n_resamples: int, confidence: float):
    if n <= 0:
        raise ValueError("n (the number of examples) must be positive: nothing to resample")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence}")


def resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n) indices drawn with replacement; the same seed gives the same draws."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def bootstrap_ci(metric, n: int, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile interval of `metric(indices)`, where `metric` scores the examples at `indices`."""
    _check(n, n_resamples, confidence)
    stats = np.array([metric(idx) for idx in resample_indices(n, n_resamples, seed)])
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return Interval(float(metric(np.arange(n))), float(low), float(high))


def mean_ci(values, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Bootstrap interval of the mean of per-example scores (accuracy: 0/1 values)."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"values must be one score per example (1-D), got shape {values.shape}")
    return bootstrap_ci(lambda idx: values[idx].mean(), len(values), n_resamples, confidence, seed)


def paired_bootstrap(metric_a, metric_b, n: int, n_resamples: int = 1000, confidence: float = 0.95,
                     seed: int = 0) -> dict:
    """Difference metric_b - metric_a on the *same* resampled examples (paired), its interval,
    and a two-sided bootstrap p-value (how often the resampled difference crosses zero)."""
    _check(n, n_resamples, confidence)
    diffs = np.array([metric_b(idx) - metric_a(idx) for idx in resample_indices(n, n_resamples, seed)])
    everything = np.arange(n)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    p = min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean()))
    return {"difference": float(metric_b(everything) - metric_a(everything)), "low": float(low),
            "high": float(high), "p_value": float(p)}


def paired_permutation_test(scores_a, scores_b, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Sign-flip permutation test on per-example scores of two systems on the same examples.

    Under "no difference" swapping a pair's two scores changes nothing, so the observed mean
    difference is compared with those of random swaps (scipy, permutation_type='samples')."""
    from scipy.stats import permutation_test

    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"scores_a and scores_b must be equally long non-empty 1-D lists, got {a.shape} and {b.shape}")
    res = permutation_test((a, b), lambda x, y, axis: np.mean(y - x, axis=axis), permutation_type="samples",
                           vectorized=True, n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return {"difference": float(np.mean(b - a)), "p_value": float(res.pvalue)}
