"""Monitoring from request logs: latency percentiles and input drift (PSI).

PSI, the population stability index, compares a feature's distribution in production
(`actual`) with the training data (`expected`) over the same bins:

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)        a_i, e_i = share of each sample in bin i

Conventional reading (credit scoring, where PSI comes from): below 0.1 no real shift,
0.1-0.25 a moderate shift worth a look, above 0.25 a significant shift (retrain or
investigate).  Empty bins get a small epsilon so the logarithm stays finite.
Drift is computed offline from logs, never on the request path.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

PSI_MODERATE, PSI_SIGNIFICANT = 0.1, 0.25
EPS = 1e-4


def shares(values, categories) -> np.ndarray:
    counts = Counter(values)
    n = max(len(values), 1)
    return np.array([counts.get(c, 0) / n for c in categories], dtype=float)


def psi_from_shares(expected: np.ndarray, actual: np.ndarray, eps: float = EPS) -> float:
    e = np.clip(np.asarray(expected, float), eps, None)
    a = np.clip(np.asarray(actual, float), eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(expected, actual, bins: int = 10, categorical: bool | None = None) -> float:
    """PSI of two samples: categories as they are, numbers in deciles of `expected`."""
    expected, actual = list(expected), list(actual)
    if not expected or not actual:
        raise ValueError("psi needs two non-empty samples (expected = reference, actual = production)")
    if categorical is None:
        categorical = not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in expected + actual)
    if categorical:
        cats = sorted(set(expected) | set(actual), key=str)
        return psi_from_shares(shares(expected, cats), shares(actual, cats))
    edges = np.unique(np.quantile(np.asarray(expected, float), np.linspace(0, 1, bins + 1)[1:-1]))
    e_idx, a_idx = np.searchsorted(edges, expected, side="right"), np.searchsorted(edges, actual, side="right")
    cats = range(len(edges) + 1)
    return psi_from_shares(shares(list(e_idx), cats), shares(list(a_idx), cats))


def drift_level(value: float) -> str:
    return "significant" if value > PSI_SIGNIFICANT else "moderate" if value >= PSI_MODERATE else "none"


def percentile(values, q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default."""
    xs = sorted(float(v) for v in values)
    if not xs:
        raise ValueError("percentile of an empty list")
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_summary(latencies) -> dict:
    return {"p50_s": round(percentile(latencies, 50), 4), "p95_s": round(percentile(latencies, 95), 4),
            "n": len(latencies)}
